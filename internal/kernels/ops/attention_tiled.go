package ops

import "fmt"

// Tiled attention: the fast path for calls with many queries (prefill,
// Stable Diffusion's self- and cross-attention over thousands of tokens).
//
// The rows (query i, head h) that share kv head g are numbered ρ = i*group
// + h%group (group = NHead/NKVHead) and cut into tiles of attnTileRows
// consecutive ρ; tile t covers kv head t/tilesPerHead. For one tile and a
// block of keys at a time the kernel computes the block's scores as a small
// matrix product S = Q·Kᵀ, updates each row's running max and sum (the
// online softmax, as attentionRef), rescales the output accumulator and
// adds P·V — so keys and values are read once per tile instead of once per
// row, and both products run at matrix-multiply speed. Memory is O(tile):
// no nQ×NKV score matrix is ever formed.
//
// Numerics: each row's result is that of the streaming softmax in F32
// (attentionRef) up to summation order and the exponential's last bits
// (within 2e-5 absolute in the tests, for outputs of size ~1). The C
// kernel's arithmetic for a row does not depend on its tile or its lane,
// so results are bit-identical at any split of the tiles, and the AVX-512
// kernel gives the AVX2 kernel's bits. A row computed here and the same
// row computed by Attention's row kernel (a decode step) may differ in the
// last bits. Without a C kernel (no cgo, a CPU without AVX2, tests'
// withRef) the tiles run attentionRef row by row.

// attnTileRows is the rows per tile (four strips of 24 vector lanes in the
// AVX2 kernel, two of 48 in the AVX-512 one); attnTiledMinRows the fewest
// rows per kv head for which the tiled path is used.
const (
	attnTileRows     = 96 // a multiple of the C kernels' strips (24 and 48 rows), at most their TA_MAXBQ (192)
	attnTiledMinRows = 32
)

// AttentionTiles reports whether AttentionTiled applies to a call with nQ
// queries and into how many tiles it splits the work. It applies to the
// default arithmetic (NumericsFlash without GGMLSmallBatch) with at least
// 32 rows per kv head (nQ*NHead/NKVHead); masks, positions, windows and
// softcaps are all supported. The answer depends only on p and nQ.
func AttentionTiles(p AttentionParams, nQ int) (tiles int, ok bool) {
	if p.Numerics != NumericsFlash || p.GGMLSmallBatch || p.NKVHead <= 0 || p.NHead%p.NKVHead != 0 {
		return 0, false
	}
	rows := nQ * (p.NHead / p.NKVHead)
	if rows < attnTiledMinRows {
		return 0, false
	}
	return p.NKVHead * ((rows + attnTileRows - 1) / attnTileRows), true
}

// AttentionTiled computes the same attention as Attention (the same
// arguments, validated the same way) for tiles [tileStart, tileEnd) of
// AttentionTiles' split. Tiles are independent: any split of the range
// gives the same bits. It fails where AttentionTiles says it does not
// apply.
func AttentionTiled(p AttentionParams, a *AttentionArgs, nQ, tileStart, tileEnd int) error {
	if err := p.Validate(a, nQ); err != nil {
		return err
	}
	n, ok := AttentionTiles(p, nQ)
	if !ok {
		return fmt.Errorf("attention: the tiled kernel does not apply (numerics %d, small batch %v, %d queries)", p.Numerics, p.GGMLSmallBatch, nQ)
	}
	if tileStart < 0 || tileEnd > n || tileStart > tileEnd {
		return fmt.Errorf("attention: tile range [%d,%d) outside [0,%d)", tileStart, tileEnd, n)
	}
	if tileEnd == tileStart {
		return nil
	}
	dv := p.HeadDimV
	if dv == 0 {
		dv = p.HeadDim
	}
	args := &attnArgs{p: p, q: a.Q, out: a.Out, k: a.K, v: a.V, nkv: a.NKV, dv: dv,
		mask: a.Mask, qRow: p.NHead * p.HeadDim, oRow: p.NHead * dv}
	if p.Causal || p.Window > 0 || a.KPos != nil {
		args.qPos, args.kPos = a.QPos, a.KPos
	}
	if useFast && args.nkv > 0 {
		attentionTiledFast(args, nQ, tileStart, tileEnd)
		return nil
	}
	attentionTiledRef(args, nQ, tileStart, tileEnd)
	return nil
}

// attentionTiledRef runs the rows of tiles [t0, t1) with attentionRef, one
// query (a run of consecutive heads) at a time.
func attentionTiledRef(a *attnArgs, nQ, t0, t1 int) {
	p := a.p
	group := p.NHead / p.NKVHead
	rows := nQ * group
	perHead := (rows + attnTileRows - 1) / attnTileRows
	for t := t0; t < t1; t++ {
		g := t / perHead
		r0, r1 := tileRows(t%perHead, perHead, rows)
		for rho := r0; rho < r1; {
			i := rho / group
			end := min(r1, (i+1)*group)
			row := i*p.NHead + g*group
			rs, re := row+rho%group, row+(end-1)%group+1
			if a.nkv == 0 {
				clear(a.out[rs*a.dv : re*a.dv])
			} else {
				attentionRef(a, rs, re)
			}
			rho = end
		}
	}
}

// tileRows is the row range [ρ0, ρ1) of the kv head's tile t (of n, over
// rows rows). Tiles alternate from both ends (0, n-1, 1, n-2, …) so that a
// contiguous range of tiles gets a fair share of a causal call's work; the
// AVX2 kernel (ta_tile_block) uses the same order.
func tileRows(t, n, rows int) (int, int) {
	b := t / 2
	if t&1 == 1 {
		b = n - 1 - t/2
	}
	return b * attnTileRows, min(rows, (b+1)*attnTileRows)
}
