package gemma

import (
	"fmt"
	"math"

	"mica/internal/compute"
	"mica/internal/format/gguf"
	"mica/internal/nn"
	"mica/internal/tensor"
)

// Model is a loaded Gemma 3 / Gemma 4 decoder. Its weights stay in the
// memory-mapped file; they are wrapped, not copied. A Model is not safe for
// concurrent Forward calls.
type Model struct {
	Config *Config

	be   compute.Backend
	file *gguf.File
	w    *weights
	res  nn.Resources // converted weights; the file when Open opened it
	kpos []int32      // 0, 1, 2, … (cache slot positions)
}

// Open loads the GGUF file at path; Close releases it.
func Open(path string, be compute.Backend) (*Model, error) {
	return gguf.OpenWith(path, func(f *gguf.File) (*Model, error) {
		m, err := Load(f, be)
		if err == nil {
			m.res.File = f
		}
		return m, err
	})
}

// Load builds a model over an open file, which must stay open while the
// model is used.
func Load(f *gguf.File, be compute.Backend) (*Model, error) {
	c, err := ParseConfig(f)
	if err != nil {
		return nil, err
	}
	w, owned, err := bindWeights(f, be, c)
	if err != nil {
		return nil, err
	}
	return &Model{Config: c, be: be, file: f, w: w, res: nn.Resources{B: be, Tensors: owned}}, nil
}

// Close frees what the model allocated and, for Open, closes the file.
func (m *Model) Close() error { return m.res.Close() }

// Backend is the backend the model computes on.
func (m *Model) Backend() compute.Backend { return m.be }

// Forward appends tokens[i] to seqs[i], all in one batch, and returns for
// each sequence the logits of every new position, row-major
// [len(tokens[i])][vocab].
func (m *Model) Forward(seqs []*Sequence, tokens [][]int32) ([][]float32, error) {
	return m.forward(seqs, tokenInputs(tokens), true, nil)
}

// ForwardLast is Forward returning only each sequence's last row [vocab]
// (the output projection is computed for those rows alone).
func (m *Model) ForwardLast(seqs []*Sequence, tokens [][]int32) ([][]float32, error) {
	return m.forward(seqs, tokenInputs(tokens), false, nil)
}

// Input is one run of a sequence's input: token ids, or embedding rows fed
// to the first layer as they are (an image's embeddings from the vision
// projector, which are not scaled by √d as token embeddings are).
type Input struct {
	Tokens []int32
	// Embd holds rows × NEmbd values, row-major; used when Tokens is empty.
	Embd []float32
	// NonCausal lets every position of the run attend to every other
	// position of the run (earlier and later), as llama.cpp decodes an
	// image; sliding-window layers still hide keys a window or more behind
	// the query. A run longer than the sequence's Step is split into steps
	// that each see only themselves and earlier positions, as llama.cpp's
	// micro-batches do.
	NonCausal bool
}

// Len is the number of positions the run takes.
func (in *Input) Len(nEmbd int) int {
	if len(in.Tokens) > 0 || nEmbd <= 0 {
		return len(in.Tokens)
	}
	return len(in.Embd) / nEmbd
}

func tokenInputs(tokens [][]int32) []Input {
	in := make([]Input, len(tokens))
	for i, t := range tokens {
		in[i].Tokens = t
	}
	return in
}

// ForwardInputs is Forward for runs of tokens or embeddings: inputs[i] is
// appended to seqs[i]. It returns every new position's logits when all is
// set, else only each sequence's last row.
func (m *Model) ForwardInputs(seqs []*Sequence, inputs []Input, all bool) ([][]float32, error) {
	return m.forward(seqs, inputs, all, nil)
}

// ForwardLastInto is ForwardInputs for each sequence's last row only, with
// the rows written into buf: row i is buf[i*vocab:(i+1)*vocab]. buf is
// grown when it is shorter than len(seqs)*vocab and returned, so that a
// caller stepping again and again (a decode loop) reuses one buffer instead
// of allocating the logits every step. The rows alias buf: they are valid
// until buf is passed again.
func (m *Model) ForwardLastInto(seqs []*Sequence, inputs []Input, buf []float32) ([][]float32, []float32, error) {
	if n := len(seqs) * m.Config.NVocab; cap(buf) < n {
		buf = make([]float32, n)
	} else {
		buf = buf[:n]
	}
	logits, err := m.forward(seqs, inputs, false, buf)
	return logits, buf, err
}

// Prefill appends the runs to seq in order (e.g. text, image, text: one
// decode per run, like llama.cpp's mtmd chunks) and returns the logits
// after the last position.
func (m *Model) Prefill(seq *Sequence, runs []Input) ([]float32, error) {
	var last []float32
	for i, r := range runs {
		logits, err := m.forward([]*Sequence{seq}, []Input{r}, false, nil)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i, err)
		}
		last = logits[0]
	}
	if last == nil {
		return nil, fmt.Errorf("gemma: prefill: no runs")
	}
	return last, nil
}

// validate checks a Forward call before anything runs.
func (m *Model) validate(seqs []*Sequence, inputs []Input) error {
	if len(seqs) != len(inputs) || len(seqs) == 0 {
		return fmt.Errorf("gemma: forward: %d sequences, %d token lists", len(seqs), len(inputs))
	}
	d := m.Config.NEmbd
	seen := map[*Sequence]bool{}
	for i, s := range seqs {
		switch {
		case s == nil || s.m != m:
			return fmt.Errorf("gemma: forward: sequence %d does not belong to this model", i)
		case s.cap == 0:
			return fmt.Errorf("gemma: forward: sequence %d was freed", i)
		case s.broken:
			return fmt.Errorf("gemma: forward: sequence %d was left inconsistent by a failed call; Truncate(0) it", i)
		case seen[s]:
			return fmt.Errorf("gemma: forward: sequence %d appears twice in one batch", i)
		case len(inputs[i].Tokens) > 0 && len(inputs[i].Embd) > 0:
			return fmt.Errorf("gemma: forward: sequence %d: an input has tokens or embeddings, not both", i)
		case len(inputs[i].Embd)%d != 0:
			return fmt.Errorf("gemma: forward: sequence %d: %d embedding values are not whole rows of %d", i, len(inputs[i].Embd), d)
		case inputs[i].Len(d) == 0:
			return fmt.Errorf("gemma: forward: sequence %d has no tokens", i)
		case s.pos+inputs[i].Len(d) > s.cap:
			return fmt.Errorf("gemma: forward: sequence %d: %d tokens after %d positions exceed its context of %d", i, inputs[i].Len(d), s.pos, s.cap)
		}
		seen[s] = true
		for j, id := range inputs[i].Tokens {
			if id < 0 || int(id) >= m.Config.NVocab {
				return fmt.Errorf("gemma: forward: sequence %d token %d: id %d outside the vocabulary [0,%d)", i, j, id, m.Config.NVocab)
			}
		}
	}
	return nil
}

// forward runs the inputs in steps. Without all, sequence i's last row of
// logits goes to last[i*vocab:(i+1)*vocab] (allocated when nil).
func (m *Model) forward(seqs []*Sequence, inputs []Input, all bool, last []float32) ([][]float32, error) {
	if err := m.validate(seqs, inputs); err != nil {
		return nil, err
	}
	d := m.Config.NEmbd
	// Steps take up to each sequence's Step tokens from every sequence that
	// has some left (the sliding-window rings hold one step's worth).
	V := m.Config.NVocab
	out := make([][]float32, len(seqs))
	if !all && last == nil {
		last = make([]float32, len(seqs)*V)
	}
	done := make([]int, len(seqs))
	start := make([]int, len(seqs))
	for i, s := range seqs {
		start[i] = s.pos
	}
	for {
		b := &batch{last: !all}
		var which []int
		for i, s := range seqs {
			in := &inputs[i]
			if n := min(s.step, in.Len(d)-done[i]); n > 0 {
				which = append(which, i)
				final := done[i]+n == in.Len(d)
				b.add(s, in, done[i], n, d, all || final)
				if !all && final {
					b.dst = append(b.dst, last[i*V:(i+1)*V:(i+1)*V])
				} else {
					b.dst = append(b.dst, nil)
				}
			}
		}
		if len(which) == 0 {
			return out, nil
		}
		logits, err := m.step(b)
		if err != nil {
			// Roll back. A ring may already hold the failed step's
			// rows over positions it still needs: those sequences must
			// be reset.
			for i, s := range seqs {
				if s.ring < s.cap || s.Truncate(start[i]) != nil {
					s.broken = true
				}
			}
			return nil, err
		}
		for k, i := range which {
			done[i] += b.count[k]
			if all {
				out[i] = append(out[i], logits[k]...)
			} else if logits[k] != nil {
				out[i] = logits[k]
			}
		}
	}
}

// batch is one step's flattened tokens: sequence k's tokens are rows
// [start[k], start[k]+count[k]).
type batch struct {
	seqs      []*Sequence
	ids       []int32     // token ids (0 in rows that take embeddings)
	embd      [][]float32 // sequence k's embedding rows, or nil for tokens
	nonCausal []bool      // sequence k's rows attend to each other both ways
	pos       []int32     // position of each row in its sequence
	start     []int
	count     []int
	out       []bool // whether sequence k's logits are wanted
	last      bool   // only the last row of each wanted sequence (ForwardLast)
	// dst[k] receives sequence k's logits when set (with last: its one
	// row); nil: step allocates them. One entry per sequence.
	dst [][]float32

	slots [][]int32 // sequence k's ring-slot positions during the step
	used  []int     // ring slots sequence k's attention reads
	// added[k] is the number of rows sequence k adds to its cache in the
	// step: count[k], unless keepRows left only some of them as queries.
	added []int
}

// outputRows lists the rows whose logits are wanted, in order, and how
// many each sequence has.
func (b *batch) outputRows() (rows []int32, wanted []int) {
	wanted = make([]int, len(b.seqs))
	for k := range b.seqs {
		if !b.out[k] {
			continue
		}
		first := b.start[k]
		if b.last {
			first = b.start[k] + b.count[k] - 1
		}
		for r := first; r < b.start[k]+b.count[k]; r++ {
			rows = append(rows, int32(r))
		}
		wanted[k] = b.start[k] + b.count[k] - first
	}
	return rows, wanted
}

// keepRows is the step with only rows as its queries (outputRows' rows
// and counts): the same sequences, cache slots and new cache rows.
func (b *batch) keepRows(rows []int32, count []int) *batch {
	k := *b
	k.ids, k.pos = make([]int32, len(rows)), make([]int32, len(rows))
	for j, r := range rows {
		k.ids[j], k.pos[j] = b.ids[r], b.pos[r]
	}
	k.count, k.start = count, make([]int, len(count))
	for i := 1; i < len(count); i++ {
		k.start[i] = k.start[i-1] + count[i-1]
	}
	k.embd = nil // the embeddings are in the residual stream by now
	return &k
}

// kept is what a layer hands on when it drops the rows no logits need:
// rows of the step (outputRows'), the batch of those rows, and where their
// residual stream (x[rows]) and per-layer inputs go.
type kept struct {
	rows   []int32
	b      *batch
	x, ple *compute.Tensor
}

// pleRows gathers rows of the per-layer inputs ple[layers, n, P] into a
// new [layers, len(rows), P].
func pleRows(p *fwd, ple *compute.Tensor, rows []int32, layers int) *compute.Tensor {
	n, P := ple.Shape[1], ple.Shape[2]
	idx := make([]int32, 0, layers*len(rows))
	for l := range layers {
		for _, r := range rows {
			idx = append(idx, int32(l*n)+r)
		}
	}
	out := p.New(layers, len(rows), P)
	p.GetRows(p.View(ple, layers*n, P), idx, p.View(out, layers*len(rows), P))
	return out
}

// add appends rows [from, from+n) of in (d values per embedding row).
func (b *batch) add(s *Sequence, in *Input, from, n, d int, out bool) {
	b.seqs = append(b.seqs, s)
	b.start = append(b.start, len(b.ids))
	b.count = append(b.count, n)
	b.added = append(b.added, n)
	b.out = append(b.out, out)
	b.nonCausal = append(b.nonCausal, in.NonCausal)
	var embd []float32
	if len(in.Tokens) == 0 {
		embd = in.Embd[from*d : (from+n)*d]
	}
	b.embd = append(b.embd, embd)
	for j := 0; j < n; j++ {
		var id int32 // embedding rows: a placeholder id, their rows are replaced
		if embd == nil {
			id = in.Tokens[from+j]
		}
		b.ids = append(b.ids, id)
		b.pos = append(b.pos, int32(s.pos+j))
	}
}

// step runs one batch through the model and returns each sequence's logits
// rows (nil where not wanted); on success the sequences advance.
func (m *Model) step(b *batch) ([][]float32, error) {
	c, w := m.Config, m.w
	p := newFwd(m.be, c.Eps)
	defer p.Free()
	n := len(b.ids)
	b.slots = make([][]int32, len(b.seqs))
	b.used = make([]int, len(b.seqs))
	for k, s := range b.seqs {
		b.slots[k], b.used[k] = s.stepSlots(b.count[k])
	}

	// Token embeddings, scaled by √d.
	x := p.New(n, c.NEmbd)
	p.GetRows(w.tokEmbd, b.ids, x)
	p.Scale(x, float32(math.Sqrt(float64(c.NEmbd))))
	// Embedding runs (images) replace their rows as given, unscaled.
	for k, e := range b.embd {
		if e != nil && p.Err == nil {
			p.Copy(p.Upload(e, b.count[k], c.NEmbd), p.Rows(x, b.start[k], b.start[k]+b.count[k]))
		}
	}

	var ple *compute.Tensor // [layers, n, P]
	if c.EmbdPerLayer > 0 {
		ple = m.perLayerInputs(p, x, b)
	}

	// The rows whose logits are wanted: every row (or only the last, for
	// ForwardLast) of the sequences with out set. Past the last layer that
	// stores K/V, nothing needs the other rows: that layer computes K/V for
	// all rows and the rest (queries, attention, output projection, FFN)
	// for the wanted rows only, and the layers after it (Gemma 4's
	// KV-shared layers) run on those rows alone, or not at all when no row
	// is wanted (a prompt chunk before the last).
	rows, wanted := b.outputRows()
	lastKV := c.lastKVLayer()
	lb := b // the layers' rows: the step's, then only those kept
	for il := range c.Layers {
		var keep *kept
		if len(rows) < n && il == lastKV {
			keep = &kept{rows: rows, b: b.keepRows(rows, wanted)}
			if len(rows) > 0 {
				keep.x = p.New(len(rows), c.NEmbd)
				if ple != nil {
					keep.ple = pleRows(p, ple, rows, c.NLayer)
				}
			}
		}
		mark := p.Mark()
		m.layer(p, il, x, ple, lb, keep)
		p.FreeFrom(mark)
		if p.Err != nil {
			return nil, fmt.Errorf("gemma: layer %d: %w", il, p.Err)
		}
		if keep != nil {
			if len(rows) == 0 {
				break
			}
			x, ple, lb = keep.x, keep.ple, keep.b
		}
	}

	// Final norm, then the (tied) output projection and softcap, for the
	// rows wanted.
	logits := make([][]float32, len(b.seqs))
	if len(rows) > 0 {
		h := p.RMSNorm(x, w.outputNorm)
		z := p.MatMul(w.output, h)
		if c.FinalSoftcap > 0 && p.Err == nil {
			p.Check(compute.Unary(compute.Softcap, z, z, c.FinalSoftcap))
		}
		if p.Err != nil {
			return nil, fmt.Errorf("gemma: output: %w", p.Err)
		}
		// Each sequence's rows go to its destination, else to one
		// allocation for the rest.
		V, rest := c.NVocab, 0
		for k := range b.seqs {
			if b.out[k] && b.dst[k] == nil {
				rest += wanted[k]
			}
		}
		var flat []float32
		if rest > 0 {
			flat = make([]float32, rest*V)
		}
		off := 0
		for k := range b.seqs {
			if !b.out[k] {
				continue
			}
			var dst []float32
			if b.dst[k] != nil {
				dst = b.dst[k]
			} else {
				dst, flat = flat[:wanted[k]*V:wanted[k]*V], flat[wanted[k]*V:]
			}
			zk, err := compute.Rows(z, off, off+wanted[k])
			if err == nil {
				err = m.be.Read(zk, nn.F32Bytes(dst))
			}
			if err != nil {
				return nil, fmt.Errorf("gemma: reading logits: %w", err)
			}
			logits[k] = dst
			off += wanted[k]
		}
	}

	// Only now, with every layer computed, do the sequences advance.
	for k, s := range b.seqs {
		s.slot, s.used = b.slots[k], b.used[k]
		s.pos += b.count[k]
	}
	return logits, nil
}

// layer runs block il on the residual stream x[n, d] in place. With keep,
// the layer stores K/V for all n rows, then goes on with keep's rows only
// (their residual stream in keep.x, their per-layer inputs in keep.ple),
// or stops there when keep has no rows.
func (m *Model) layer(p *fwd, il int, x, ple *compute.Tensor, b *batch, keep *kept) {
	c, l, lw := m.Config, &m.Config.Layers[il], &m.w.layers[il]
	var freqs *compute.Tensor
	if !l.Sliding {
		freqs = m.w.ropeFreqs // proportional RoPE (Gemma 4 global layers)
	}

	// Attention: q/k normed per head, rotated; V raw-K when there is no V.
	// The projections of h (those this layer has) in one product.
	h := p.RMSNorm(x, lw.attnNorm)
	var proj []*compute.Tensor
	if keep == nil {
		proj = append(proj, lw.q)
	}
	if c.OwnsKV(il) {
		proj = append(proj, lw.k)
		if lw.v != nil {
			proj = append(proj, lw.v)
		}
	}
	proj = p.MatMuls(h, proj...)
	var q *compute.Tensor
	if keep == nil {
		q, proj = proj[0], proj[1:]
	}
	if c.OwnsKV(il) {
		n := len(b.ids)
		kProj := proj[0]
		vProj := kProj
		if lw.v != nil {
			vProj = proj[1]
		}
		k := p.View(kProj, n, l.NHeadKV, l.HeadDim)
		v := p.View(vProj, n, l.NHeadKV, l.HeadDim)
		switch {
		case c.VNorm: // weightless, per head, into a new tensor (K is normed in place below)
			v = p.RMSNorm(v, nil)
		case lw.v == nil: // V = K before its norm: keep a copy
			raw := p.New(n, l.NHeadKV, l.HeadDim)
			p.Copy(v, raw)
			v = raw
		}
		p.RMSNormInPlace(k, lw.kNorm)
		p.rope(k, l, b.pos, freqs)
		m.store(p, il, k, v, b)
	}
	if keep != nil { // the rows no logits need end here
		if len(keep.rows) == 0 {
			return
		}
		hk := p.New(len(keep.rows), c.NEmbd)
		p.GetRows(h, keep.rows, hk)
		p.GetRows(x, keep.rows, keep.x)
		h, x, ple, b = hk, keep.x, keep.ple, keep.b
		q = p.MatMul(lw.q, h)
	}
	n := len(b.ids)
	q = p.View(q, n, l.NHead, l.HeadDim)
	p.RMSNormInPlace(q, lw.qNorm)
	p.rope(q, l, b.pos, freqs)
	if c.QueryScale != 1 {
		p.Scale(q, c.QueryScale)
	}
	att := p.New(n, l.NHead, l.HeadDim)
	m.attend(p, il, q, att, b)
	o := p.MatMul(lw.o, p.View(att, n, l.NHead*l.HeadDim))
	p.RMSNormInPlace(o, lw.postAttnNorm)
	p.Add(x, o)

	// Feed-forward: dense GeGLU, or dense + routed experts.
	var f *compute.Tensor
	if lw.router != nil {
		f = m.moe(p, il, x)
	} else {
		f = p.geglu(p.RMSNorm(x, lw.ffnNorm), lw.gate, lw.up, lw.down)
	}
	p.RMSNormInPlace(f, lw.postFFNNorm)
	p.Add(x, f)

	// Per-layer embedding: x += N(proj(gelu(gate·x) ⊙ ple[l])).
	if ple != nil {
		g := p.MatMul(lw.pleGate, x)
		p.Unary(compute.GELU, g)
		p.Mul(g, p.View(p.Rows(ple, il, il+1), n, c.EmbdPerLayer))
		e := p.MatMul(lw.pleProj, g)
		p.RMSNormInPlace(e, lw.plePostNorm)
		p.Add(x, e)
	}
	if lw.outScale != 1 {
		p.Scale(x, lw.outScale)
	}
}

// store writes the new rows of K and V into each sequence's cache.
func (m *Model) store(p *fwd, il int, k, v *compute.Tensor, b *batch) {
	for i, s := range b.seqs {
		s.store(p, il, k, v, b.start[i], b.count[i])
	}
}

// attend computes each sequence's attention of its query rows over its
// cache (the layer's own, or its donor's for KV-shared layers). Sliding
// layers read their ring, whose slots carry their positions. Rows of a
// non-causal run (an image) also see the later rows of the same step; the
// sliding window still hides keys a window or more behind the query.
//
// With an F16 cache (llama.cpp's default) attention follows llama.cpp's
// non-flash arithmetic (compute.AttentionOp.GGML): Q, already scaled by
// QueryScale in F32 like Gemma 3's ggml_scale, is rounded to F16 for the
// K·Q product and the softmax weights to F16 for the product with V, over
// a whole score row. Cache row j is position j (global layers, and
// sliding layers until their ring wraps), as in llama.cpp's cache for a
// fresh sequence, so the summation lanes match; once a ring wraps the
// rows are in ring order: the sums are reordered, which moves their last
// bits and with them some F16 roundings of the weights (the parity test's
// ring run: up to 8e-4 from llama.cpp's logits, against 6e-6 unwrapped).
// An F32 cache keeps the streaming F32 softmax.
func (m *Model) attend(p *fwd, il int, q, out *compute.Tensor, b *batch) {
	l := &m.Config.Layers[il]
	for i, s := range b.seqs {
		if p.Err != nil {
			return
		}
		r0, r1 := b.start[i], b.start[i]+b.count[i]
		if r0 == r1 {
			continue // no query rows left (keepRows: a chunk wanting no logits)
		}
		nk, kpos, window := s.pos+b.added[i], m.kpos, 0
		if l.Sliding {
			window = m.Config.Window
			if s.ring < s.cap {
				nk, kpos = b.used[i], b.slots[i]
			}
		}
		p.Check(compute.Attention(compute.AttentionOp{
			Q: p.Rows(q, r0, r1), K: p.Rows(s.k[l.KVLayer], 0, nk), V: p.Rows(s.v[l.KVLayer], 0, nk),
			Out: p.Rows(out, r0, r1), QPos: b.pos[r0:r1], KPos: kpos[:nk],
			Scale: 1, Causal: !b.nonCausal[i], Window: window, GGML: s.k[l.KVLayer].DType == tensor.F16,
		}))
	}
}

// perLayerInputs computes Gemma 4's per-layer embeddings for the batch:
// ple = (N(W·x0/√d) + E_ple[tok]·√P)/√2, laid out [layer, n, P].
func (m *Model) perLayerInputs(p *fwd, x0 *compute.Tensor, b *batch) *compute.Tensor {
	c, w := m.Config, m.w
	n, L, P := len(b.ids), c.NLayer, c.EmbdPerLayer
	tok := p.New(n, L*P)
	p.GetRows(w.pleTokEmbd, b.ids, tok)
	p.Scale(tok, float32(math.Sqrt(float64(P))))
	proj := p.MatMul(w.pleProj, x0)
	p.Scale(proj, 1/float32(math.Sqrt(float64(c.NEmbd))))
	p.RMSNormInPlace(p.View(proj, n*L, P), w.pleProjNorm)
	p.Add(proj, tok)
	p.Scale(proj, 1/float32(math.Sqrt(2)))
	out := p.New(L, n, P)
	p.Copy(p.Permute(p.View(proj, n, L, P), 1, 0, 2), out)
	return out
}
