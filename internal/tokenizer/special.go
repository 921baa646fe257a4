package tokenizer

// trie finds user-defined and control tokens in raw text.
type trie struct {
	first [256]bool        // bytes that start some token
	edges map[uint64]int32 // node<<8 | byte -> child node
	nodes []trieNode
}

type trieNode struct {
	id      int32 // token ending here, or -1
	control bool  // that token is control/unknown: matched only with ParseSpecial
}

func newTrie() *trie {
	return &trie{edges: map[uint64]int32{}, nodes: []trieNode{{id: -1}}}
}

func (t *trie) insert(s string, id int32, control bool) {
	if s == "" {
		return
	}
	t.first[s[0]] = true
	n := int32(0)
	for i := 0; i < len(s); i++ {
		k := uint64(n)<<8 | uint64(s[i])
		c, ok := t.edges[k]
		if !ok {
			c = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{id: -1})
			t.edges[k] = c
		}
		n = c
	}
	if t.nodes[n].id < 0 { // first of equal texts wins (lowest id)
		t.nodes[n] = trieNode{id: id, control: control}
	}
}

// longest returns the longest allowed token starting at text[i]: its end
// and id, or id -1.
func (t *trie) longest(text string, i int, control bool) (int, int32) {
	end, id := 0, int32(-1)
	n := int32(0)
	for j := i; j < len(text); j++ {
		c, ok := t.edges[uint64(n)<<8|uint64(text[j])]
		if !ok {
			break
		}
		n = c
		if nd := t.nodes[n]; nd.id >= 0 && (control || !nd.control) {
			end, id = j+1, nd.id
		}
	}
	return end, id
}

// next finds the leftmost token at or after pos, the longest one there
// (Hugging Face's leftmost-longest matching of added tokens). It returns
// its span and id, or len(text), len(text), -1.
func (t *trie) next(text string, pos int, control bool) (int, int, int32) {
	for i := pos; i < len(text); i++ {
		if !t.first[text[i]] {
			continue
		}
		if end, id := t.longest(text, i, control); id >= 0 {
			return i, end, id
		}
	}
	return len(text), len(text), -1
}

// span is a piece of text: a special token (id >= 0) or ordinary text (-1).
type span struct {
	start, end int
	id         int32
}

// spans cuts text into special tokens and the text between them.
//
// Leftmost-longest (Hugging Face): scan left to right, take the longest
// token at the first position where one starts.
//
// Longest-first (llama.cpp's tokenizer_st_partition): tokens are tried from
// the longest text down; each takes every non-overlapping occurrence, left
// to right, in the text not yet taken. (Among tokens of equal length
// llama.cpp's order is unspecified; here occurrences of equal length are
// taken left to right.) The two agree unless a token's occurrence overlaps
// a longer one that starts later, which no Gemma vocabulary allows.
func (t *trie) spans(text string, control, longestFirst bool, out []span) []span {
	out = out[:0]
	if !longestFirst {
		for pos := 0; pos < len(text); {
			start, end, id := t.next(text, pos, control)
			if start > pos {
				out = append(out, span{pos, start, -1})
			}
			if id < 0 {
				break
			}
			out = append(out, span{start, end, id})
			pos = end
		}
		return out
	}
	// Every occurrence of every allowed token, bucketed by length.
	type occ struct{ start, id int32 }
	var byLen [][]occ
	for i := 0; i < len(text); i++ {
		if !t.first[text[i]] {
			continue
		}
		n := int32(0)
		for j := i; j < len(text); j++ {
			c, ok := t.edges[uint64(n)<<8|uint64(text[j])]
			if !ok {
				break
			}
			n = c
			if nd := t.nodes[n]; nd.id >= 0 && (control || !nd.control) {
				l := j + 1 - i
				for len(byLen) <= l {
					byLen = append(byLen, nil)
				}
				byLen[l] = append(byLen[l], occ{int32(i), nd.id})
			}
		}
	}
	if len(byLen) == 0 {
		if len(text) > 0 {
			out = append(out, span{0, len(text), -1})
		}
		return out
	}
	// Taken bytes. An occurrence overlaps a taken one (never shorter)
	// exactly when its first or last byte is taken.
	taken := make([]int32, len(text)) // id+1 at a token's first byte; -1 inside
	for l := len(byLen) - 1; l > 0; l-- {
		for _, o := range byLen[l] {
			s, e := int(o.start), int(o.start)+l
			if taken[s] != 0 || taken[e-1] != 0 {
				continue
			}
			taken[s] = o.id + 1
			for k := s + 1; k < e; k++ {
				taken[k] = -1
			}
		}
	}
	textStart := -1
	for i := 0; i < len(text); {
		if taken[i] <= 0 {
			if textStart < 0 {
				textStart = i
			}
			i++
			continue
		}
		if textStart >= 0 {
			out = append(out, span{textStart, i, -1})
			textStart = -1
		}
		id := taken[i] - 1
		e := i + 1
		for e < len(text) && taken[e] == -1 {
			e++
		}
		out = append(out, span{i, e, id})
		i = e
	}
	if textStart >= 0 {
		out = append(out, span{textStart, len(text), -1})
	}
	return out
}
