package cpu

import (
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"mica/internal/compute"
	"mica/internal/kernels/matmul"
	"mica/internal/kernels/ops"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// Grains: work is split in multiples of these so each chunk is worth waking
// a thread for and the matmul micro-kernels see whole row groups.
const (
	matmulGrain = 16
	rowGrain    = 4
	elemGrain   = 4096
)

// minPart is the least work, in values touched, that one part of a split
// gets: handing a part to another thread (posting it, the wait at the end,
// a wake-up when the worker sleeps) costs up to microseconds, more than
// this much work, so the small ops of a decode step (a few rows of activations) run
// on the calling thread alone. How work is split never changes a result.
const minPart = 16 << 10

// minMatMulPart is minPart for matrix products, in multiply-adds: quantized
// dot products do several per nanosecond.
const minMatMulPart = 128 << 10

// actSplitBlocks is the fewest activation blocks per thread of a product
// shared out by activation rows (fewer: by weight rows, so that no thread
// is left with a short last block while the other has a long one).
const actSplitBlocks = 4

// balancedRows is the most activation rows of a product whose weight rows
// are handed out in several ranges per thread (Pool.ParallelBalanced).
const balancedRows = 16

// par runs fn over [0, n) in parts of whole grains, each part at least
// minPart values of work (items of per values).
func (b *Backend) par(n, grain, per int, fn func(start, end int)) {
	b.pool.ParallelMin(n, grain, ceilDiv(minPart, max(per, 1)), fn)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// align64 rounds n up to a multiple of 64.
func align64(n int) int { return (n + 63) &^ 63 }

// Run executes op synchronously on the worker pool.
func (b *Backend) Run(op compute.Op) error {
	b.scratchMu.Lock()
	defer b.scratchMu.Unlock()
	switch o := op.(type) {
	case compute.MatMulOp:
		return b.matmul(o.W, f32(o.X), o.X.Rows(), f32(o.Y), o.W.Shape[0])
	case compute.MatMulsOp:
		prods := make([]product, len(o.Ws))
		for i, w := range o.Ws {
			prods[i] = product{w, f32(o.Ys[i]), w.Shape[0]}
		}
		return b.matmuls(f32(o.X), o.X.Rows(), prods)
	case compute.GetRowsOp:
		w, err := bytesOf(o.W)
		if err != nil {
			return err
		}
		y := f32(o.Y)
		var firstErr firstError
		b.par(len(o.IDs), 1, o.W.Shape[1], func(s, e int) {
			firstErr.set(ops.GetRows(o.W.DType, w, o.W.Shape[1], o.IDs, y, s, e))
		})
		return firstErr.get()
	case compute.BinaryOp:
		a, bb, y := f32(o.A), f32(o.B), f32(o.Y)
		if len(bb) == len(a) {
			fn := ops.Add
			if o.Kind == compute.Mul {
				fn = ops.Mul
			}
			b.par(len(a), elemGrain, 1, func(s, e int) { fn(a, bb, y, s, e) })
			return nil
		}
		fn := ops.AddRow
		if o.Kind == compute.Mul {
			fn = ops.MulRow
		}
		n := len(bb)
		b.par(len(a)/n, rowGrain, n, func(s, e int) { fn(a, bb, y, n, s, e) })
		return nil
	case compute.ScaleOp:
		x, y := f32(o.X), f32(o.Y)
		b.par(len(x), elemGrain, 1, func(s, e int) { ops.Scale(x, y, o.S, s, e) })
		return nil
	case compute.UnaryOp:
		return b.unary(o)
	case compute.NormOp:
		x, y, n := f32(o.X), f32(o.Y), o.X.Dim(-1)
		w, bias := f32(o.W), f32(o.B)
		if o.Kind == compute.RMSNorm {
			if bias != nil {
				return fmt.Errorf("norm: RMSNorm takes no bias")
			}
			b.par(o.X.Rows(), rowGrain, n, func(s, e int) { ops.RMSNorm(x, w, y, n, o.Eps, s, e) })
		} else {
			b.par(o.X.Rows(), rowGrain, n, func(s, e int) { ops.LayerNorm(x, w, bias, y, n, o.Eps, s, e) })
		}
		return nil
	case compute.GroupNormOp:
		nd := len(o.X.Shape)
		c, hw := o.X.Shape[nd-3], o.X.Shape[nd-2]*o.X.Shape[nd-1]
		batch := 1
		if nd == 4 {
			batch = o.X.Shape[0]
		}
		x, y, w, bias := f32(o.X), f32(o.Y), f32(o.W), f32(o.B)
		per := c * hw
		// Work units are (image, group) pairs.
		b.pool.Parallel(batch*o.Groups, 1, func(s, e int) {
			for u := s; u < e; u++ {
				img, g := u/o.Groups, u%o.Groups
				ops.GroupNorm(x[img*per:(img+1)*per], w, bias, y[img*per:(img+1)*per], c, hw, o.Groups, o.Eps, g, g+1)
			}
		})
		return nil
	case compute.SoftmaxOp:
		x, y, n := f32(o.X), f32(o.Y), o.X.Dim(-1)
		p := ops.SoftmaxParams{N: n, Scale: o.Scale}
		b.par(o.X.Rows(), rowGrain, n, func(s, e int) { ops.SoftmaxExt(x, y, p, s, e) })
		return nil
	case compute.RoPEOp:
		return b.rope(o)
	case compute.AttentionOp:
		return b.attention(o)
	case compute.Conv2DOp:
		return b.conv2d(o)
	case compute.UpsampleOp:
		x, y := f32(o.X), f32(o.Y)
		h, w := o.X.Shape[2], o.X.Shape[3]
		b.pool.Parallel(o.X.Shape[0]*o.X.Shape[1], 1, func(s, e int) {
			ops.UpsampleNearest(x, y, h, w, o.Factor, o.Factor, s, e)
		})
		return nil
	case compute.ConcatOp:
		a, bb, y := f32(o.A), f32(o.B), f32(o.Y)
		var firstErr firstError
		b.pool.Parallel(ops.OuterCount(o.A.Shape, o.Axis), 1, func(s, e int) {
			firstErr.set(ops.Concat(a, bb, y, o.A.Shape, o.B.Shape, o.Axis, s, e))
		})
		return firstErr.get()
	case compute.CopyOp:
		return b.copyOp(o)
	}
	return fmt.Errorf("cpu: op %s is not implemented", op.Name())
}

// matmul computes y[n, rows] = x[n, cols]·wᵀ (rows of y ldy apart).
func (b *Backend) matmul(wt *compute.Tensor, x []float32, n int, y []float32, ldy int) error {
	return b.matmuls(x, n, []product{{wt, y, ldy}})
}

// product is one weight of matmuls and its output.
type product struct {
	w   *compute.Tensor
	y   []float32 // n rows, ldy apart
	ldy int
}

// matmuls computes y = x[n, cols]·wᵀ for every product: the activations are
// converted once per dot-product type (into the scratch buffer), then the
// weights' rows, one weight after the other, are split over the threads in
// one section.
func (b *Backend) matmuls(x []float32, n int, prods []product) error {
	type part struct {
		product
		data       []byte // the weights' bytes
		wt         tensor.DType
		rows, cols int
		first      int // its first row among all the weights' rows
		p          *matmul.Prepared
	}
	parts := make([]part, len(prods))
	total, size := 0, 0
	for i, pr := range prods {
		w, err := bytesOf(pr.w)
		if err != nil {
			return err
		}
		pt := &parts[i]
		pt.product, pt.data, pt.wt, pt.rows, pt.cols, pt.first = pr, w, pr.w.DType, pr.w.Shape[0], pr.w.Shape[1], total
		total += pt.rows
		// one conversion per dot-product type: an earlier weight's serves
		vt, err := matmul.VecDotType(pr.w.DType)
		if err != nil {
			return err
		}
		for j := range i {
			if parts[j].p.VecType == vt && parts[j].cols == pt.cols {
				pt.p = parts[j].p
				break
			}
		}
		if pt.p == nil {
			sz, err := matmul.PreparedSize(pr.w.DType, n, pt.cols)
			if err != nil {
				return err
			}
			pt.p = &matmul.Prepared{VecType: vt} // laid out below
			size += align64(sz)
		}
	}
	scratch := b.scratchBuf(size)
	for i := range parts {
		pt := &parts[i]
		if pt.p.N != 0 { // an earlier part's, converted already
			continue
		}
		sz, _ := matmul.PreparedSize(pt.wt, n, pt.cols)
		pt.p.Q, scratch = scratch[:sz:sz], scratch[align64(sz):] // each part's conversion 64-byte aligned
		if err := matmul.PrepareLayout(pt.p, pt.wt, x, n, pt.cols); err != nil {
			return err
		}
		// the activations' conversion (quantization, F16/BF16 rounding) by
		// rows on every thread: for a large batch it is tens of megabytes
		if p := pt.p; p.VecType != tensor.F32 || p.Packed() { // F32 ones are used as they are, unless packed
			b.par(n, 1, pt.cols, func(s, e int) { matmul.PrepareRows(p, x, s, e) })
		}
	}
	var firstErr firstError
	mul := func(s, e int) {
		for i := range parts {
			pt := &parts[i]
			if r0, r1 := max(s-pt.first, 0), min(e-pt.first, pt.rows); r0 < r1 {
				firstErr.set(matmul.MulRows(pt.wt, pt.data, pt.cols, pt.p, pt.y, pt.ldy, r0, r1))
			}
		}
	}
	// Decode-sized products (a few activation rows) share the rows out in
	// several ranges per thread, so a thread slowed down by another
	// process (or a vCPU the host holds back) does not hold the step up;
	// prompt-sized ones with packed activations (F16 and F32 weights, up to
	// 8 MiB of activations) do the same in pieces of
	// (activation block, weight rows) (packedPieces). Larger ones that the
	// kernel still runs in activation blocks, packing each as it goes
	// (SigLIP's 4096 patches, the feed-forward of an SD transformer block
	// on a 64×64 latent), are shared out by activation rows, a few
	// ranges of whole blocks per thread: each thread then packs only its
	// own rows (split by weight rows, every thread packed all of them) and
	// runs every weight row over them. The others keep one range of weight
	// rows per thread, as their kernels prepare the activations per call.
	packed, blocks := b.pool.Threads() > 1, b.pool.Threads() > 1
	jb := parts[0].p.BlockRows()
	for i := range parts {
		packed = packed && parts[i].p.Packed()
		blocks = blocks && parts[i].p.BlockRows() == jb
	}
	blocks = blocks && jb > 0 && n >= actSplitBlocks*b.pool.Threads()*jb
	minItems := ceilDiv(minMatMulPart, n*parts[0].cols)
	switch {
	case n <= balancedRows:
		b.pool.ParallelBalanced(total, matmulGrain, minItems, mul)
	case packed:
		b.packedPieces(n, total, func(j0, j1, s, e int) {
			for i := range parts {
				pt := &parts[i]
				if r0, r1 := max(s-pt.first, 0), min(e-pt.first, pt.rows); r0 < r1 {
					firstErr.set(matmul.MulBlock(pt.wt, pt.data, pt.cols, pt.p, pt.y, pt.ldy, r0, r1, j0, j1))
				}
			}
		}, jb)
	case blocks:
		b.pool.ParallelBalanced(n, jb, 1, func(j0, j1 int) {
			for i := range parts {
				pt := &parts[i]
				firstErr.set(matmul.MulBlock(pt.wt, pt.data, pt.cols, pt.p, pt.y, pt.ldy, 0, pt.rows, j0, j1))
			}
		})
	default:
		b.pool.ParallelMin(total, matmulGrain, minItems, mul)
	}
	return firstErr.get()
}

// packedPieces runs a product of n activation rows (in blocks of jb) and
// total weight rows as pieces (activation block, a thread count's share of
// the weight rows), numbered block by block: the threads take ranges of
// pieces as they go, so they work on the same activation block at once
// (each keeps it in its cache for its share of the weights, as with one
// range per thread) and a thread held back does not hold up the others.
// run gets activation rows [j0, j1) and weight rows [s, e).
func (b *Backend) packedPieces(n, total int, run func(j0, j1, s, e int), jb int) {
	t := b.pool.Threads()
	per := ceilDiv(ceilDiv(total, t), matmulGrain) * matmulGrain // weight rows of a piece
	shares := ceilDiv(total, per)
	blocks := ceilDiv(n, jb)
	b.pool.ParallelBalanced(blocks*shares, 1, 1, func(u0, u1 int) {
		for u := u0; u < u1; u++ {
			k, r := u/shares, u%shares
			run(k*jb, min(n, (k+1)*jb), r*per, min(total, (r+1)*per))
		}
	})
}

func (b *Backend) unary(o compute.UnaryOp) error {
	x, y := f32(o.X), f32(o.Y)
	if o.Gate != nil {
		g := f32(o.Gate)
		var fn func(x, g, out []float32, s, e int)
		switch o.Kind {
		case compute.GELU:
			fn = ops.GEGLU
		case compute.SiLU:
			fn = ops.SwiGLU
		default:
			return fmt.Errorf("unary: kind %d takes no gate", o.Kind)
		}
		if len(g) != len(x) || len(y) != len(x) {
			return fmt.Errorf("unary: gate %v for x %v", o.Gate, o.X)
		}
		b.par(len(x), elemGrain, 1, func(s, e int) { fn(x, g, y, s, e) })
		return nil
	}
	var fn func(x, out []float32, s, e int)
	switch o.Kind {
	case compute.GELU:
		fn = ops.GELU
	case compute.GELUErf:
		fn = ops.GELUErf
	case compute.SiLU:
		fn = ops.SiLU
	case compute.QuickGELU:
		fn = ops.QuickGELU
	case compute.Softcap:
		fn = func(x, out []float32, s, e int) { ops.Softcap(x, out, o.Param, s, e) }
	case compute.Tanh: // tanh(x) is the softcap with c = 1
		fn = func(x, out []float32, s, e int) { ops.Softcap(x, out, 1, s, e) }
	default:
		return fmt.Errorf("unary: unknown kind %d", o.Kind)
	}
	b.par(len(x), elemGrain, 1, func(s, e int) { fn(x, y, s, e) })
	return nil
}

func (b *Backend) rope(o compute.RoPEOp) error {
	x := f32(o.X)
	if x == nil {
		return fmt.Errorf("rope: %v must be contiguous", o.X)
	}
	p := ops.RoPEParams{NRot: o.NRot, Base: o.Base, FreqScale: o.FreqScale, Factors: f32(o.Factors), NeoX: o.NeoX}
	heads, dim := o.X.Shape[1], o.X.Shape[2]
	if err := p.Validate(dim); err != nil {
		return err
	}
	if len(o.Pos)*p.NRot > maxRopeTable {
		b.par(o.X.Shape[0]*heads, rowGrain, dim, func(s, e int) { ops.RoPE(x, o.Pos, heads, dim, p, s, e) })
		return nil
	}
	cs := b.ropeTable(o.Pos, p)
	b.par(o.X.Shape[0]*heads, rowGrain, dim, func(s, e int) { ops.RoPEApply(x, cs, heads, dim, p, s, e) })
	return nil
}

// maxRopeTable is the most values of a kept RoPE table (1 MiB); longer
// runs of positions compute their angles as they go.
const maxRopeTable = 1 << 18

// ropeTable returns the (cos, sin) table of positions pos under p
// (ops.RoPEAngles): a forward pass rotates q and k of every layer at the
// same positions with one or two sets of parameters, so the last few
// tables are kept and one is computed only when no kept one matches (a
// decode step of 8 sequences computed 8 tables of 128 angles 36 times).
// Applying a table gives the same bits as ops.RoPE.
func (b *Backend) ropeTable(pos []int32, p ops.RoPEParams) []float32 {
	factors := p.Factors // only the first NRot/2 are read
	if factors != nil {
		factors = factors[:p.NRot/2]
	}
	for _, t := range b.ropes {
		if t.nRot == p.NRot && t.base == p.Base && t.freqScale == p.FreqScale &&
			t.attnFactor == p.AttnFactor && slices.Equal(t.factors, factors) && slices.Equal(t.pos, pos) {
			return t.cs
		}
	}
	t := &b.ropes[b.nextRope]
	b.nextRope = (b.nextRope + 1) % len(b.ropes)
	t.nRot, t.base, t.freqScale, t.attnFactor = p.NRot, p.Base, p.FreqScale, p.AttnFactor
	t.factors = slices.Clone(factors)
	t.pos = append(t.pos[:0], pos...)
	t.cs = slices.Grow(t.cs[:0], len(pos)*p.NRot)[:len(pos)*p.NRot]
	b.par(len(pos), 1, p.NRot, func(s, e int) { ops.RoPEAngles(t.cs, pos, p, s, e) })
	return t.cs
}

// ropeEntry is a kept RoPE table: the parameters and positions it is for.
type ropeEntry struct {
	nRot                        int
	base, freqScale, attnFactor float32
	factors                     []float32
	pos                         []int32
	cs                          []float32
}

// firstError keeps the first error that the threads of a section report.
type firstError struct {
	mu  sync.Mutex
	err error
}

// set keeps err if it is the first non-nil one.
func (f *firstError) set(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// kvView describes a K or V tensor [n, heads, d] (possibly a strided view of
// a cache) for the attention kernel.
func kvView(t *compute.Tensor) (ops.KV, error) {
	st := t.Stride()
	if st[2] != 1 {
		return ops.KV{}, fmt.Errorf("attention: K/V %v rows must be contiguous", t)
	}
	kv := ops.KV{RowStride: st[0], HeadStride: st[1]}
	s := t.Storage.(*storage)
	switch t.DType {
	case tensor.F32:
		kv.F32 = f32All(t)[t.Offset:]
	case tensor.F16:
		all := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s.data))), len(s.data)/2)
		kv.F16 = all[t.Offset:]
	default:
		return kv, fmt.Errorf("attention: K/V %v must be F32 or F16", t)
	}
	return kv, nil
}

func (b *Backend) attention(o compute.AttentionOp) error {
	k, err := kvView(o.K)
	if err != nil {
		return err
	}
	v, err := kvView(o.V)
	if err != nil {
		return err
	}
	nq, heads := o.Q.Shape[0], o.Q.Shape[1]
	p := ops.AttentionParams{
		NHead: heads, NKVHead: o.K.Shape[1], HeadDim: o.Q.Shape[2], HeadDimV: o.V.Shape[2],
		Scale: o.Scale, Softcap: o.Softcap, Causal: o.Causal, Window: o.Window,
	}
	if o.GGML {
		p.Numerics = ops.NumericsGGMLNoFlash
	}
	a := &ops.AttentionArgs{Q: f32(o.Q), K: k, V: v, NKV: o.K.Shape[0], QPos: o.QPos, KPos: o.KPos, Mask: f32(o.Mask), Out: f32(o.Out)}
	if err := p.Validate(a, nq); err != nil {
		return err
	}
	var firstErr firstError
	if tiles, ok := ops.AttentionTiles(p, nq); ok {
		// many queries: tiles of (query, head) rows share each key block;
		// a few ranges of tiles per thread, taken as the threads go, so a
		// thread the host holds back does not hold the op up (the tiles
		// alternate from both ends of the queries, so ranges of them
		// already share a causal call's work fairly)
		b.pool.ParallelBalanced(tiles, 1, 1, func(s, e int) {
			firstErr.set(ops.AttentionTiled(p, a, nq, s, e))
		})
		return firstErr.get()
	}
	// Rows are (query, head) pairs; with a causal mask the later queries
	// see more cells, so the rows go out in several ranges per thread.
	b.pool.ParallelBalanced(nq*heads, 1, ceilDiv(minPart, max(a.NKV*(p.HeadDim+p.HeadDimV), 1)), func(s, e int) {
		firstErr.set(ops.Attention(p, a, nq, s, e))
	})
	return firstErr.get()
}

func (b *Backend) copyOp(o compute.CopyOp) error {
	src, dst := o.Src, o.Dst
	// Fast case: both contiguous: a straight conversion.
	if src.Contiguous() {
		sb, err := bytesOf(src)
		if err != nil {
			return err
		}
		db, err := bytesOf(dst)
		if err != nil {
			return err
		}
		if src.DType == dst.DType {
			copy(db, sb)
			return nil
		}
		if src.DType == tensor.F32 && dst.DType == tensor.F16 { // new K/V rows into an F16 cache
			x := f32(src)
			if len(db) != 2*len(x) {
				return fmt.Errorf("copy: %v into %v", src, dst)
			}
			b.par(len(x), elemGrain, 1, func(s, e int) { ops.ToF16(x[s:e], db[2*s:2*e]) })
			return nil
		}
		if src.DType == tensor.F32 { // e.g. new K/V rows into a BF16 or quantized cache
			// in whole blocks, on every thread (a prompt's K/V rows are
			// megabytes)
			x, bs := f32(src), dst.DType.BlockSize()
			rb, ok := dst.DType.RowBytes(int64(bs))
			if !ok || len(x)%bs != 0 {
				return quant.Quantize(dst.DType, x, db) // its error names the problem
			}
			var firstErr firstError
			b.par(len(x)/bs, 1, bs, func(s, e int) {
				firstErr.set(quant.Quantize(dst.DType, x[s*bs:e*bs], db[int64(s)*rb:int64(e)*rb]))
			})
			return firstErr.get()
		}
		n := src.Elems()
		vals := make([]float32, n)
		if err := quant.Dequantize(src.DType, sb, vals); err != nil {
			return err
		}
		return quant.Quantize(dst.DType, vals, db)
	}
	if src.DType != tensor.F32 {
		return fmt.Errorf("copy: strided views must be F32, got %v", src)
	}
	// Strided F32 source: gather into F32 (dst directly when it is F32).
	n := src.Elems()
	var out []float32
	if dst.DType == tensor.F32 {
		out = f32(dst)
	} else {
		out = make([]float32, n)
	}
	nd := len(src.Shape)
	rows := n / src.Shape[nd-1]
	all := f32All(src)
	dstStrides := (&compute.Tensor{Shape: src.Shape}).Stride()
	b.par(rows, rowGrain, src.Shape[nd-1], func(s, e int) {
		ops.CopyStrided(out, 0, dstStrides, all, src.Offset, src.Stride(), src.Shape, s, e)
	})
	if dst.DType == tensor.F32 {
		return nil
	}
	db, err := bytesOf(dst)
	if err != nil {
		return err
	}
	return quant.Quantize(dst.DType, out, db)
}
