package ops

import (
	"math"
	"sort"
	"sync"
)

// NumericsGGMLNoFlash's blocks (see attentionNoFlash): which queries go
// together, the union of their visible cells, and one block's run.

// nfBlockRows is the number of (query, head) rows attentionNoFlash takes
// through K and V together (two output tiles of 6 rows); nfSlack is by how
// many cells a block's union may exceed each member query's own cells.
const (
	nfBlockRows = 12
	nfSlack     = 32
	nfOutRows   = 3 // rows per pass of the fast output kernel
)

// nfBlock gathers the queries of one block and runs it.
type nfBlock struct {
	a        *attnArgs
	g        int  // the K/V head
	maxRows  int  // rows per block
	ordered  bool // kPos strictly increasing from ≥ 0 (see nfOrdered)
	units    []nfUnit
	rows     int
	lists    [][]int32 // a visible-cell list per unit, and one more
	cells    []int32   // the union, when not a range
	cLo, cHi int32     // the union is the range [cLo, cHi] when contiguous
	contig   bool
	spare    []int32
	q, w     []float32
	acc      []float32 // the output kernels' lane sums
	ooff     []int
	dead     []bool
}

// nfUnit is query i's heads [ha, hb) of the block's K/V head, with their
// visible cells.
type nfUnit struct {
	i, ha, hb int
	idx       []int32
}

// add puts query i's heads [ha, hb) in the block, running the block first
// when it is full or its cells differ too much from query i's.
func (b *nfBlock) add(i, ha, hb int) {
	a := b.a
	if b.rows+hb-ha > b.maxRows {
		b.flush()
	}
	slot := len(b.units)
	idx := b.visible(i, b.lists[slot][:0])
	if len(idx) == 0 { // sees nothing: zeros
		clear(a.out[i*a.oRow+ha*a.dv : i*a.oRow+hb*a.dv])
		return
	}
	if slot > 0 && !b.join(idx) {
		b.flush()
		b.lists[0], b.lists[slot] = b.lists[slot], b.lists[0]
		slot = 0
	}
	if slot == 0 {
		b.cells = b.cells[:0]
		b.contig = int(idx[len(idx)-1]-idx[0]) == len(idx)-1
		if b.contig {
			b.cLo, b.cHi = idx[0], idx[len(idx)-1]
		} else {
			b.cells = append(b.cells, idx...)
		}
	}
	b.units = append(b.units, nfUnit{i: i, ha: ha, hb: hb, idx: idx})
	b.rows += hb - ha
}

// join makes the block's union take in idx (a query's visible cells) and
// says yes, or says no (changing nothing) when the union would exceed some
// member's cells by more than nfSlack.
func (b *nfBlock) join(idx []int32) bool {
	least := len(idx)
	for _, u := range b.units {
		least = min(least, len(u.idx))
	}
	n := len(idx)
	if b.contig && int(idx[n-1]-idx[0]) == n-1 && idx[0] <= b.cHi+1 && idx[n-1] >= b.cLo-1 {
		lo, hi := min(b.cLo, idx[0]), max(b.cHi, idx[n-1])
		if int(hi-lo)+1 > least+nfSlack {
			return false
		}
		b.cLo, b.cHi = lo, hi
		return true
	}
	cells := b.unionCells()
	u := b.spare[:0]
	for x, y := 0, 0; x < len(cells) || y < n; {
		switch {
		case y == n || x < len(cells) && cells[x] < idx[y]:
			u = append(u, cells[x])
			x++
		case x == len(cells) || idx[y] < cells[x]:
			u = append(u, idx[y])
			y++
		default:
			u = append(u, cells[x])
			x, y = x+1, y+1
		}
	}
	if len(u) > least+nfSlack {
		b.spare = u
		return false
	}
	b.spare, b.cells = b.cells, u
	b.contig = false
	return true
}

// unionCells returns the block's union as a list.
func (b *nfBlock) unionCells() []int32 {
	if b.contig {
		b.cells = b.cells[:0]
		for j := b.cLo; j <= b.cHi; j++ {
			b.cells = append(b.cells, j)
		}
		b.contig = false
	}
	return b.cells
}

// visible appends to idx the cells query i sees (see nfVisible).
func (b *nfBlock) visible(i int, idx []int32) []int32 {
	a := b.a
	p := a.p
	qp, mr := a.query(i)
	if !b.ordered || mr != nil {
		return nfVisible(idx, a.kPos, mr, qp, p.Causal, p.Window, a.nkv)
	}
	// kPos increasing: the visible cells are one range
	lo, hi := nfPosRange(qp, p.Causal, p.Window)
	ja := sort.Search(a.nkv, func(j int) bool { return a.kPos[j] >= lo })
	jb := sort.Search(a.nkv, func(j int) bool { return a.kPos[j] > hi })
	idx = idx[:max(jb-ja, 0)]
	for k := range idx {
		idx[k] = int32(ja + k)
	}
	return idx
}

// flush runs the block and empties it.
func (b *nfBlock) flush() {
	if len(b.units) == 0 {
		return
	}
	cells := b.unionCells()
	if len(b.units) > 1 && !b.extraFinite(cells) {
		// done one query at a time: no cell it cannot see
		for k := range b.units {
			b.run(b.units[k:k+1], b.units[k].idx)
		}
	} else {
		b.run(b.units, cells)
	}
	b.units, b.rows = b.units[:0], 0
}

// extraFinite says whether V is finite at every cell of cells that some
// unit does not see.
func (b *nfBlock) extraFinite(cells []int32) bool {
	n := len(cells)
	for _, u := range b.units {
		m := len(u.idx)
		if m == n {
			continue
		}
		if int(cells[n-1]-cells[0]) == n-1 && int(u.idx[m-1]-u.idx[0]) == m-1 {
			// both ranges: the cells before and after u's
			for j := cells[0]; j < u.idx[0]; j++ {
				if !b.vFinite(int(j)) {
					return false
				}
			}
			for j := u.idx[m-1] + 1; j <= cells[n-1]; j++ {
				if !b.vFinite(int(j)) {
					return false
				}
			}
			continue
		}
		k := 0
		for _, j := range cells {
			if k < len(u.idx) && u.idx[k] == j {
				k++
				continue
			}
			if !b.vFinite(int(j)) {
				return false
			}
		}
	}
	return true
}

// vFinite says whether cell j's V vector of the block's head is finite.
func (b *nfBlock) vFinite(j int) bool {
	v := b.a.v
	off := j*v.RowStride + b.g*v.HeadStride
	if v.F16 != nil {
		for _, x := range v.F16[off : off+b.a.dv] {
			if x&0x7c00 == 0x7c00 {
				return false
			}
		}
		return true
	}
	for _, x := range v.F32[off : off+b.a.dv] {
		if x-x != 0 {
			return false
		}
	}
	return true
}

// run computes the rows of units over cells (the union of their visible
// cells, increasing).
func (b *nfBlock) run(units []nfUnit, cells []int32) {
	a := b.a
	p := a.p
	d, dv, nkv := p.HeadDim, a.dv, a.nkv
	f16v := a.v.F16 != nil
	capScale := float32(0)
	if p.Softcap != 0 {
		capScale = p.Scale / p.Softcap
	}
	R := 0
	for _, u := range units {
		for h := u.ha; h < u.hb; h++ {
			q := a.q[u.i*a.qRow+h*d : u.i*a.qRow+h*d+d]
			if a.k.F16 != nil {
				nfRoundF16(q, b.q[R*d:])
			} else {
				copy(b.q[R*d:], q)
			}
			b.ooff[R] = u.i*a.oRow + h*dv
			R++
		}
	}
	nfScoresBlk(b.q[:R*d], R, a.k, b.g*a.k.HeadStride, cells, b.w, nkv)
	lo, hi := int(cells[0])&^15, int(cells[len(cells)-1])+1
	r := 0
	for _, u := range units {
		var mr []float32
		if a.mask != nil {
			mr = a.mask[u.i*nkv : u.i*nkv+nkv]
		}
		for h := u.ha; h < u.hb; h++ {
			mx := nfSoftmaxRow(b.w[r*nkv:r*nkv+nkv], lo, hi, u.idx, mr, p.Scale, p.Softcap, capScale, f16v)
			b.dead[r] = mx == float32(math.Inf(-1))
			r++
		}
	}
	nfOutputBlk(b.w, nkv, R, a.v, b.g*a.v.HeadStride, cells, b.acc, a.out, b.ooff[:R], dv)
	for r := range R {
		if b.dead[r] { // no visible cell with a finite score
			clear(a.out[b.ooff[r] : b.ooff[r]+dv])
		}
	}
}

// nfScratch holds attentionNoFlash's work buffers between calls (a decode
// step makes one call per sequence and layer; allocating them each time
// fed the garbage collector megabytes per step).
type nfScratch struct {
	f []float32
	i []int32
	b nfBlock
}

var nfScratchPool = sync.Pool{New: func() any { return new(nfScratch) }}

// block returns s's nfBlock for a, with room for rows rows and lists
// visible-cell lists.
func (s *nfScratch) block(a *attnArgs, rows, lists int) *nfBlock {
	d, dv, nkv := a.p.HeadDim, a.dv, a.nkv
	nf := rows*d + rows*nkv + nfOutRows*16*dv
	// grown with room to spare: in a decode loop nkv grows by one a step
	if cap(s.f) < nf {
		s.f = make([]float32, nf+nf/2)
	}
	ni := (lists + 2) * nkv
	if cap(s.i) < ni {
		s.i = make([]int32, ni+ni/2)
	}
	f, in := s.f[:nf], s.i[:ni]
	b := &s.b
	*b = nfBlock{a: a, maxRows: rows, units: b.units[:0], lists: b.lists[:0], ooff: b.ooff[:0], dead: b.dead[:0]}
	b.q, f = f[:rows*d:rows*d], f[rows*d:]
	b.w, f = f[:rows*nkv:rows*nkv], f[rows*nkv:]
	b.acc = f
	for k := 0; k < lists; k++ {
		b.lists = append(b.lists, in[k*nkv:k*nkv:(k+1)*nkv])
	}
	in = in[lists*nkv:]
	b.cells, b.spare = in[:0:nkv], in[nkv:nkv:2*nkv]
	if cap(b.ooff) < rows {
		b.ooff, b.dead = make([]int, rows), make([]bool, rows)
	}
	b.ooff, b.dead = b.ooff[:rows], b.dead[:rows]
	return b
}
