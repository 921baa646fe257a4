package tokenizer

// pairTable maps a pair of symbol ids to its merge: an open-addressing hash
// table with linear probing, several times faster to fill and to query than
// a Go map for half a million merges.
type pairTable struct {
	keys  []uint64 // pairKey, or emptyKey
	vals  []merge
	mask  uint64
	shift uint
	n     int
}

const emptyKey = ^uint64(0) // no pair of non-negative int32 ids has this key

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newPairTable(n int) *pairTable {
	size, bits := 16, uint(4)
	for size < 2*n { // load factor at most 1/2
		size *= 2
		bits++
	}
	p := &pairTable{keys: make([]uint64, size), vals: make([]merge, size), mask: uint64(size - 1), shift: 64 - bits}
	for i := range p.keys {
		p.keys[i] = emptyKey
	}
	return p
}

func (p *pairTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> p.shift }

// set stores m under k, replacing an earlier value.
func (p *pairTable) set(k uint64, m merge) {
	for i := p.slot(k); ; i = (i + 1) & p.mask {
		switch p.keys[i] {
		case emptyKey:
			p.keys[i] = k
			p.vals[i] = m
			p.n++
			return
		case k:
			p.vals[i] = m
			return
		}
	}
}

func (p *pairTable) get(k uint64) (merge, bool) {
	if p == nil {
		return merge{}, false
	}
	for i := p.slot(k); ; i = (i + 1) & p.mask {
		switch p.keys[i] {
		case k:
			return p.vals[i], true
		case emptyKey:
			return merge{}, false
		}
	}
}
