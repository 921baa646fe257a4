//go:build cgo && amd64

// AVX2+FMA+F16C kernels for F32, F16 and BF16 weights: each output's 16
// lanes in two __m256; F16 widened with vcvtph2ps, BF16 by 16-bit shifts
// (both exact). Matrix-vector by fkern.h's row streams, small batches by
// its tiles, n > 48 by gemm_avx2 (half lanes; below). Also the activation
// rounding of Prepare.
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC push_options
// Exact IEEE operations as written: no contraction of a*b+c into an FMA
// (explicit FMAs only), so every path computes identical values.
#pragma GCC optimize("fp-contract=off")
#pragma GCC target("avx2,fma,f16c")

#define FK_ISA avx2
#define FV __m256
#define FW 8
#define FK_NH 2
#define FV_ZERO() _mm256_setzero_ps()
#define FV_LOAD(p) _mm256_loadu_ps(p)
#define FV_STORE(p, v) _mm256_storeu_ps(p, v)
#define FK_REG(v) __asm__("" : "+x"(v))
#define FV_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)

// lanes j += j+8 (lo + hi), j += j+4, then (l0+l2)+(l1+l3)
static inline __attribute__((always_inline)) float red16_avx2(__m256 lo, __m256 hi) {
	const __m256 v = _mm256_add_ps(lo, hi);
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#define FV_RED16(v) red16_avx2((v)[0], (v)[1])

static inline __attribute__((always_inline)) __m256 loadw_avx2(int T, const uint8_t *p) {
	if (T == 0)
		return _mm256_loadu_ps((const float *)p);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
#define FLOADW(T, p) loadw_avx2(T, p)

// Of 16 BF16 weights: the odd columns (high halves of the dwords) and the
// even ones (low halves), widened.
#define FLOADBF_ODD(p) \
	_mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p)), _mm256_set1_epi32((int)0xffff0000)))
#define FLOADBF_EVEN(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(p)), 16))

// Tiles of fkern.h: F32 (and F16 widened by packw) 3×2 (12 accumulators +
// 3 weight vectors + 1 activation vector = 16 registers), BF16 3×2 (12 + 2
// activation vectors + 1 weight vector). They run 1 < n ≤ FK_JB (48, one
// activation block: there the weights are widened once per call and these
// tiles are as fast or faster); larger n run gemm_avx2 below, n = 1
// fkern.h's row streams.
#define FK_RM 3
#define FK_RN 2
#define FK_RMB 3
#define FK_RNB 2
#define FK_MM 3
#define FK_MN 2
#define FK_TILES_0(X) X(0, 1, 1) X(0, 2, 1) X(0, 3, 1) X(0, 1, 2) X(0, 2, 2) X(0, 3, 2)
#define FK_TILES_31(X) X(31, 1, 1) X(31, 2, 1) X(31, 3, 1) X(31, 1, 2) X(31, 2, 2) X(31, 3, 2)

static __attribute__((noinline)) int gemm_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y, size_t ldy,
	int r0, int r1, const void *xpk);
#define FK_GEMM gemm_avx2

#include "fkern.h"

// ---- n > FK_JB: GEMM on half lanes ----
//
// An output's 16 lane accumulators are two independent halves until the
// reduction, whose first step adds lane l + 8 to lane l: lanes 0–7 (half 0)
// take the columns 16v + l, lanes 8–15 (half 1) the columns 16v + 8 + l
// (BF16: in the activations' kernel order, vector v of a half is the odd
// columns of its 8 lanes for even v, the even columns for odd v — at
// offset 16v + 8h of the kern row too). So each half is an 8-lane dot
// product over nv = kmain/16 vectors, which the register tile runs for
// G_RM weight rows × G_RN activation rows with one __m256 per output (12
// accumulators, 3 activation vectors, 1 weight vector: 16 registers, 7
// loads per 12 fmas), half 0 then half 1; then red16(half 0, half 1) and
// the tail columns, in order. Same lanes, same fma sequence per lane, same
// reduction: the bits of fkern.h's kernels and of the reference.
//
// Operands. The activations are packed into that order (all columns,
// groups of G_RN rows: [group][half][v][row][8]) once per call and thread,
// a block of rows at a time, or for F16 and F32 weights once for all threads
// before the call (xpk: Prepare packs them, mica_fpack_avx2, and the
// threads then take pieces of activation block × weight rows,
// mica_fgemm_avx2); for F16 weights as F16 (the values are F16
// already: Prepare rounded them), halving the bytes the tiles stream from
// L2, and widened again in registers (vcvtph2ps). F32 and F16 weight rows
// are read in place, F16 widened in registers: a tile's G_RM rows × column
// block stay in L1 while the activation groups pass. BF16 weights (odd
// and even columns split by shift and mask, which in the inner loop cost
// more than packing) are widened into a per-thread buffer, G_RM rows ×
// column block at a time ([half][v][row][8]). (Packing everything as
// float32, as before, spent about a sixth of the time in the copies at the
// SD-convolution shape.)
//
// Blocks: as many activation rows as G_XB bytes of packed activations hold
// (at least G_JBMIN, at most G_JBMAX: fewer passes over the weights, which
// come from L3) × G_RB weight rows × column blocks of at most G_KV vectors.
// Lane states cross column blocks through a per-thread scratch (stored and
// reloaded, exact). G_XB is half of Zen 3's 512 KiB L2, so the block stays
// there beside the weights and lane states: at 600 KiB the FFN-down shape
// (K = 2048, 144 rows, 576 KiB of F16) streamed from L3 at 81 GFLOP/s per
// thread against 85–86 at 256 KiB, the F32 and SD-convolution shapes
// gained 1–3%, the others were level (one thread, CPU time, best of 7).
// F16 weight rows take column blocks of up to G_KV16 = 128 vectors (a
// 4-row tile's weights are then 16 KiB, half of L1): the FFN-down shape in
// one block instead of two ran 84.2 → 88.8 GFLOP/s per thread, 2880 and
// 4304 columns 83.4 → 85.7 and 78.7 → 79.2 (best of 4 alternated runs of
// best-of-3, one thread, CPU time). F32 and packed BF16 rows keep 64.

#define G_RM 4
#define G_RN 3
#ifndef G_XB
#define G_XB (256 << 10) // bytes of packed activations per block, at most
#endif
#ifndef G_JBMIN
#define G_JBMIN 48 // activation rows per block: at least (unless n is less)
#endif
#ifndef G_JBMAX
#define G_JBMAX 144 // and at most
#endif
#ifndef G_RB
#define G_RB 48 // weight rows per block (a multiple of G_RM)
#endif
#ifndef G_WHINT
#define G_WHINT _MM_HINT_T1
#endif
#ifndef G_KV
#define G_KV 64 // at most this many vectors (16 columns) per column block
#endif
#ifndef G_KV16
#define G_KV16 128 // the same for F16 weights (a tile's rows: 16 KiB of L1)
#endif

// Weight operand of a tile: float32 packed by gpackw (BF16), F32 rows in
// place, F16 rows in place (then the activations are packed as F16).
enum { GW_PACKED = 0, GW_F32 = 1, GW_F16 = 2 };

// gpackx packs activation rows [j0, j1) (stride cols), vectors [0, nv) of
// both halves: d[((g·2 + h)·nv + v)·G_RN·8 + jj·8 + l] = x[(G_RN·g + jj)·cols
// + 16v + 8h + l], as float32, or as F16 (f16: elements of 2 bytes,
// rounded to nearest even). A row's place depends on its index only, so
// the rows of a call can be packed in any ranges.
static void gpackx(int f16, const float *x, int cols, int j0, int j1, int nv, float *d) {
	for (int j = j0; j < j1; j++) {
		const float *s = x + (size_t)j * cols;
		const size_t o0 = (size_t)(j / G_RN * 2) * nv * (G_RN * 8) + j % G_RN * 8, o1 = o0 + (size_t)nv * (G_RN * 8);
		// one pass over the row, both halves; the next row into L1 meanwhile
		if (f16)
			for (int v = 0; v < nv; v++) {
				_mm_prefetch((const char *)(s + cols + 16 * v), _MM_HINT_T0);
				uint16_t *o = (uint16_t *)d + (size_t)v * (G_RN * 8);
				_mm_storeu_si128((__m128i *)(o + o0), _mm256_cvtps_ph(_mm256_loadu_ps(s + 16 * v), _MM_FROUND_TO_NEAREST_INT));
				_mm_storeu_si128((__m128i *)(o + o1), _mm256_cvtps_ph(_mm256_loadu_ps(s + 16 * v + 8), _MM_FROUND_TO_NEAREST_INT));
			}
		else
			for (int v = 0; v < nv; v++) {
				_mm_prefetch((const char *)(s + cols + 16 * v), _MM_HINT_T0);
				float *o = d + (size_t)v * (G_RN * 8);
				_mm256_storeu_ps(o + o0, _mm256_loadu_ps(s + 16 * v));
				_mm256_storeu_ps(o + o1, _mm256_loadu_ps(s + 16 * v + 8));
			}
	}
}

// gpackw widens rm BF16 weight rows (stride wrb), vectors [v0, v0 + nvb)
// of both halves: d[(h·nvb + v − v0)·G_RM·8 + i·8 + l].
static void gpackw(const uint8_t *w, size_t wrb, int rm, int v0, int nvb, float *d) {
	const __m256i hi = _mm256_set1_epi32((int)0xffff0000);
	for (int i = 0; i < rm; i++) {
		const uint8_t *src = w + (size_t)i * wrb;
		for (int h = 0; h < 2; h++) {
			float *o = d + (size_t)h * nvb * (G_RM * 8) + i * 8;
			for (int v = v0; v < v0 + nvb; v++) {
				const __m256i raw = _mm256_loadu_si256((const __m256i *)(src + 2 * (32 * (v >> 1) + 16 * h)));
				const __m256 f = _mm256_castsi256_ps(v & 1 ? _mm256_slli_epi32(raw, 16) : _mm256_and_si256(raw, hi));
				_mm256_storeu_ps(o + (size_t)(v - v0) * (G_RM * 8), f);
			}
		}
	}
}

// ghalf runs half h of a tile over one column block of nvb vectors: acc
// from zero (first) or from st, then one fma per lane per vector. wp: the
// weights (GW_PACKED: packed by gpackw; else the tile's first row at the
// block's first column, rows wrb bytes apart), xp: the packed activation
// group at the block's first vector (halves xhs elements apart).
static inline __attribute__((always_inline)) void ghalf(int GW, int RM, int RN, int h, const void *wp, size_t wrb,
	int nvb, const void *xp, size_t xhs, const float *st, size_t sti, int first, __m256 acc[G_RM][G_RN]) {
#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++)
			acc[i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(st + i * sti + j * 16 + 8 * h);
	const int x16 = GW == GW_F16;
	const size_t wvs = GW == GW_PACKED ? G_RM * 32 : GW == GW_F32 ? 64 : 32; // bytes per vector
	const uint8_t *wv = (const uint8_t *)wp + (GW == GW_PACKED ? (size_t)h * nvb * (G_RM * 32) : (size_t)h * wvs / 2);
	const uint8_t *xv = (const uint8_t *)xp + (size_t)h * xhs * (x16 ? 2 : 4);
	for (int v = 0; v < nvb; v++, wv += wvs, xv += G_RN * 8 * (x16 ? 2 : 4)) {
		__m256 xr[G_RN];
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++) {
			xr[j] = x16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xv + 16 * j)))
				    : _mm256_loadu_ps((const float *)(xv + 32 * j));
			FK_REG(xr[j]);
		}
#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			__m256 a = GW == GW_PACKED ? _mm256_loadu_ps((const float *)(wv + 32 * i))
				 : GW == GW_F32	   ? _mm256_loadu_ps((const float *)(wv + i * wrb))
						   : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wv + i * wrb)));
			FK_REG(a);
#pragma GCC unroll 3
			for (int j = 0; j < RN; j++)
				acc[i][j] = _mm256_fmadd_ps(a, xr[j], acc[i][j]);
		}
	}
}

// gred8 is red16_avx2 of 8 outputs at once, a[i] and b[i] (i < 4) holding
// lo + hi of output i (the reduction's first step, done by the caller):
// lanes 0–3 of the result are a's sums, lanes 4–7 b's. Per output the same
// additions as red16_avx2: lane k += lane k + 4, then (l0 + l2) + (l1 + l3).
static inline __attribute__((always_inline)) __m256 gred8(const __m256 a[4], const __m256 b[4]) {
	__m256 p[4];
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++) // (a lanes k + (k+4) | b lanes k + (k+4)), k < 4
		p[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[i], b[i], 0x20), _mm256_permute2f128_ps(a[i], b[i], 0x31));
	// transpose the 4×4 blocks: t[k] = (lane k of p[0..3] | the same for b)
	const __m256 t01 = _mm256_unpacklo_ps(p[0], p[1]), t23 = _mm256_unpacklo_ps(p[2], p[3]);
	const __m256 u01 = _mm256_unpackhi_ps(p[0], p[1]), u23 = _mm256_unpackhi_ps(p[2], p[3]);
	const __m256 t0 = _mm256_shuffle_ps(t01, t23, 0x44), t1 = _mm256_shuffle_ps(t01, t23, 0xee);
	const __m256 t2 = _mm256_shuffle_ps(u01, u23, 0x44), t3 = _mm256_shuffle_ps(u01, u23, 0xee);
	return _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3));
}

// One tile, RM ≤ G_RM weight rows × RN ≤ G_RN activation rows, one column
// block of nvb vectors (wp, xp, xhs: as for ghalf). first: lanes from
// zero, else from st; last: reduce, add the tail columns kmain.. cols − 1
// in order (w: the tile's weight rows of type T, stride wrb, x: its
// activation rows, as MulRows got them) and write y[j·ldy + i], else store
// the lanes to st (output (i, j) at st + i·sti + j·16).
static inline __attribute__((always_inline)) void gtile(int GW, int RM, int RN, const void *wp, int nvb,
	const void *xp, size_t xhs, float *st, size_t sti, int first, int last, int T, const uint8_t *w, size_t wrb,
	const float *x, int cols, int kmain, float *y, size_t ldy) {
	float lo[G_RM * G_RN * 8] __attribute__((aligned(32)));
	__m256 acc[G_RM][G_RN];
	ghalf(GW, RM, RN, 0, wp, wrb, nvb, xp, xhs, st, sti, first, acc);
#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++)
			_mm256_storeu_ps(last ? lo + (i * G_RN + j) * 8 : st + i * sti + j * 16, acc[i][j]);
	ghalf(GW, RM, RN, 1, wp, wrb, nvb, xp, xhs, st, sti, first, acc);
	if (last && RM == G_RM && kmain == cols) { // full tile, no tail: 8 reductions at a time
		__m256 u[G_RN][G_RM];
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++)
#pragma GCC unroll 4
			for (int i = 0; i < G_RM; i++)
				u[j][i] = _mm256_add_ps(_mm256_loadu_ps(lo + (i * G_RN + j) * 8), acc[i][j]);
#pragma GCC unroll 2
		for (int j = 0; j < RN; j += 2) {
			const __m256 r = gred8(u[j], u[j + 1 < RN ? j + 1 : j]);
			_mm_storeu_ps(y + j * ldy, _mm256_castps256_ps128(r));
			if (j + 1 < RN)
				_mm_storeu_ps(y + (j + 1) * ldy, _mm256_extractf128_ps(r, 1));
		}
		return;
	}
#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++) {
			if (!last) {
				_mm256_storeu_ps(st + i * sti + j * 16 + 8, acc[i][j]);
				continue;
			}
			float s = red16_avx2(_mm256_loadu_ps(lo + (i * G_RN + j) * 8), acc[i][j]);
			for (int k = kmain; k < cols; k++)
				s = fma1_avx2(load1_avx2(T, w + i * wrb + (size_t)k * esize_avx2(T)), x[(size_t)j * cols + k], s);
			y[j * ldy + i] = s;
		}
}

typedef void (*gtilefn)(const void *wp, int nvb, const void *xp, size_t xhs, float *st, size_t sti, int first,
	int last, int T, const uint8_t *w, size_t wrb, const float *x, int cols, int kmain, float *y, size_t ldy);

#define G_DEFTILE(GW, RM, RN)                                                                                  \
	static __attribute__((noinline)) void gtile_##GW##_##RM##x##RN(const void *wp, int nvb, const void *xp,     \
		size_t xhs, float *st, size_t sti, int first, int last, int T, const uint8_t *w, size_t wrb,        \
		const float *x, int cols, int kmain, float *y, size_t ldy) {                                         \
		gtile(GW, RM, RN, wp, nvb, xp, xhs, st, sti, first, last, T, w, wrb, x, cols, kmain, y, ldy);       \
	}
#define G_DEFTILES(GW)                                                                                     \
	G_DEFTILE(GW, 1, 1) G_DEFTILE(GW, 1, 2) G_DEFTILE(GW, 1, 3) G_DEFTILE(GW, 2, 1) G_DEFTILE(GW, 2, 2) \
	G_DEFTILE(GW, 2, 3) G_DEFTILE(GW, 3, 1) G_DEFTILE(GW, 3, 2) G_DEFTILE(GW, 3, 3) G_DEFTILE(GW, 4, 1) \
	G_DEFTILE(GW, 4, 2) G_DEFTILE(GW, 4, 3)                                                             \
	static const gtilefn gtab_##GW[G_RM][G_RN] = {                                                      \
		{gtile_##GW##_1x1, gtile_##GW##_1x2, gtile_##GW##_1x3},                                     \
		{gtile_##GW##_2x1, gtile_##GW##_2x2, gtile_##GW##_2x3},                                     \
		{gtile_##GW##_3x1, gtile_##GW##_3x2, gtile_##GW##_3x3},                                     \
		{gtile_##GW##_4x1, gtile_##GW##_4x2, gtile_##GW##_4x3},                                     \
	};
G_DEFTILES(0) // GW_PACKED
G_DEFTILES(1) // GW_F32
G_DEFTILES(2) // GW_F16

// grow makes *p hold at least n floats (64-byte aligned, kept per thread
// by the caller); false when memory ran out.
static int grow(float **p, size_t *cap, size_t n) {
	if (*cap >= n)
		return 1;
	free(*p);
	*p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
	*cap = *p ? n : 0;
	return *p != NULL;
}

// gemm_nv is the 16-column vectors of a row that the tiles run for T
// weights (the columns of whole steps: 32 for BF16, 16 otherwise); gemm_xes
// the bytes per packed activation (F16 weights: F16, otherwise float32).
static inline int gemm_nv(int T, int cols) {
	const int step = T == FT_BF16 ? 32 : 16;
	return cols / step * step / 16;
}
static inline int gemm_xes(int T) { return T == FT_F16 ? 2 : 4; }

// gemm_jbs is the activation rows per block (a multiple of G_RN) for T
// weights of cols columns: as many as G_XB bytes of packed activations
// hold, within [G_JBMIN, G_JBMAX].
static int gemm_jbs(int T, int cols) {
	const int jbs = (int)(G_XB / ((size_t)(gemm_nv(T, cols) + 1) * 16 * gemm_xes(T))) / G_RN * G_RN;
	return jbs < G_JBMIN ? G_JBMIN : jbs > G_JBMAX ? G_JBMAX : jbs;
}

static __attribute__((noinline)) int gemm_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y, size_t ldy,
	int r0, int r1, const void *xpk) {
	const int nv = gemm_nv(T, cols), kmain = 16 * nv;
	const int gw = T == FT_F32 ? GW_F32 : T == FT_F16 ? GW_F16 : GW_PACKED;
	const gtilefn(*tab)[G_RN] = gw == GW_F32 ? gtab_1 : gw == GW_F16 ? gtab_2 : gtab_0;
	const int xes = gemm_xes(T); // bytes per packed activation
	const size_t wes = T == FT_F32 ? 4 : 2; // bytes per weight
	// column blocks: as few as G_KV allows, of about equal size
	const int kvmax = gw == GW_F16 ? G_KV16 : G_KV;
	const int nkb = nv > kvmax ? (nv + kvmax - 1) / kvmax : 1;
	const int kv = (nv + nkb - 1) / nkb;
	const int jbs = gemm_jbs(T, cols);
	// scratch, one set per OS thread, kept: packed activations and
	// weights, lane states between column blocks
	static _Thread_local float *xp, *wp, *st;
	static _Thread_local size_t xcap, wcap, scap;
	const size_t xhs = (size_t)nv * (G_RN * 8); // elements per half of a packed activation group
	if (gw == GW_PACKED)
		xpk = NULL; // (BF16's activations do not come packed)
	if ((!xpk && !grow(&xp, &xcap, 2 * xhs * ((jbs + G_RN - 1) / G_RN) + 8)) ||
		(gw == GW_PACKED && !grow(&wp, &wcap, 2 * G_KV * G_RM * 8)) ||
		(nkb > 1 && !grow(&st, &scap, (size_t)jbs * G_RB * 16)))
		return -1;
	const size_t sti = 16 * (size_t)jbs;
	for (int jb = 0; jb < n; jb += jbs) {
		const int jn = n - jb < jbs ? n - jb : jbs;
		// the block's packed activations: packed here, or (jb is a multiple
		// of G_RN) group jb / G_RN of the whole call's
		const float *xb = xpk ? (const float *)((const uint8_t *)xpk + (size_t)(jb / G_RN) * 2 * xhs * xes) : xp;
		if (!xpk)
			gpackx(gw == GW_F16, x + (size_t)jb * cols, cols, 0, jn, nv, xp);
		for (int rb = r0; rb < r1; rb += G_RB) {
			const int rn = r1 - rb < G_RB ? r1 - rb : G_RB;
			for (int v0 = 0;; v0 += kv) {
				const int nvb = nv - v0 < kv ? nv - v0 : kv;
				const int first = v0 == 0, last = v0 + nvb >= nv;
				const size_t wbytes = (size_t)nvb * 16 * wes; // per weight row of the block
				for (int ig = 0; ig < rn; ig += G_RM) {
					const int rm = rn - ig < G_RM ? rn - ig : G_RM;
					const uint8_t *wr = w + (size_t)(rb + ig) * wrb;
					const void *wt = wr + (size_t)v0 * 16 * wes;
					if (gw == GW_PACKED) {
						gpackw(wr, wrb, rm, v0, nvb, wp);
						wt = wp;
					}
					// the next weight group's rows of this column block, into
					// L2 while this group's tiles run
					const int nrm = rn - ig - G_RM < G_RM ? rn - ig - G_RM : G_RM;
					for (int i = 0; i < nrm; i++) {
						const char *p = (const char *)(wr + (size_t)(G_RM + i) * wrb) + (size_t)v0 * 16 * wes;
						for (size_t o = 0; o < wbytes + 64; o += 64)
							_mm_prefetch(p + o, G_WHINT);
					}
					for (int jg = 0; jg < jn; jg += G_RN) {
						const int jm = jn - jg < G_RN ? jn - jg : G_RN;
						const uint8_t *xg = (const uint8_t *)xb + ((size_t)(jg / G_RN) * 2 * xhs + (size_t)v0 * (G_RN * 8)) * xes;
						tab[rm - 1][jm - 1](wt, nvb, xg, xhs, st + (size_t)ig * sti + (size_t)jg * 16, sti, first,
							last, T, wr, wrb, x + (size_t)(jb + jg) * cols, cols, kmain,
							y + (size_t)(jb + jg) * ldy + rb + ig, ldy);
					}
				}
				if (last)
					break;
			}
		}
	}
	return 0;
}

// The activations of a product with F16 (T = 1) or F32 (T = 0) weights
// and n > FK_JB rows, packed once for all threads as gemm_avx2 packs a
// block (F16 weights: as F16; F32: as float32): mica_fpack_bytes_avx2 is
// their size, mica_fpack_avx2 packs rows [j0, j1) of x (row 0 at x) into pk.
size_t mica_fpack_bytes_avx2(int T, int n, int cols) {
	return (size_t)((n + G_RN - 1) / G_RN) * 2 * (size_t)(cols / 16) * (G_RN * 8) * gemm_xes(T);
}

void mica_fpack_avx2(int T, const float *x, int cols, int j0, int j1, void *pk) {
	gpackx(T == FT_F16, x, cols, j0, j1, cols / 16, (float *)pk);
}

// mica_fgemm_rows_avx2 is gemm_avx2's activation rows per block for T
// weights (F32, F16, BF16) of cols columns; mica_fgemm_avx2 runs weight
// rows [r0, r1) on the packed activation rows [j0, j1) only (j0 a multiple
// of G_RN), so that the threads can take (block, rows) pieces as they go.
int mica_fgemm_rows_avx2(int T, int cols) { return gemm_jbs(T, cols); }

// mica_fk_jb_avx2: products of more activation rows than this run gemm_avx2.
int mica_fk_jb_avx2(void) { return FK_JB; }

int mica_fgemm_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int cols, float *y, size_t ldy, int r0,
	int r1, const void *pk, int j0, int j1) {
	const size_t off = (size_t)(j0 / G_RN) * 2 * (size_t)(cols / 16) * (G_RN * 8) * gemm_xes(T);
	return gemm_avx2(T, w, wrb, x + (size_t)j0 * cols, j1 - j0, cols, y + (size_t)j0 * ldy, ldy, r0, r1,
		(const uint8_t *)pk + off);
}

// Prepare for F16 (T = 1) and BF16 (T = 30) weights: out = x rounded to the
// type (round to nearest even; F16 overflow to infinity, NaNs quiet, as the
// quant package), as float32; for BF16 also kern, each row in the kernels'
// column order. x, out and kern are n×cols.
void mica_fround_avx2(int T, const float *x, int n, int cols, float *out, float *kern) {
	const size_t m = (size_t)n * cols;
	size_t i = 0;
	if (T == FT_F16) {
		for (; i + 8 <= m; i += 8)
			_mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
		for (; i < m; i++)
			out[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
		return;
	}
	const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
	const __m256i hi = _mm256_set1_epi32((int)0xffff0000), bias = _mm256_set1_epi32(0x7fff);
	const __m256i one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x400000);
	for (; i + 8 <= m; i += 8) {
		const __m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
		const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
		const __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(_mm256_srli_epi32(u, 16), one));
		const __m256i v = _mm256_blendv_epi8(r, _mm256_or_si256(u, quiet), nan);
		_mm256_storeu_si256((__m256i *)(out + i), _mm256_and_si256(v, hi));
	}
	for (; i < m; i++) {
		uint32_t u;
		memcpy(&u, x + i, 4);
		if ((u & 0x7fffffff) > 0x7f800000)
			u |= 0x400000;
		else
			u += 0x7fff + ((u >> 16) & 1);
		u &= 0xffff0000u;
		memcpy(out + i, &u, 4);
	}
	const int main = cols / 32 * 32;
	for (int j = 0; j < n; j++) {
		const float *s = out + (size_t)j * cols;
		float *d = kern + (size_t)j * cols;
		for (int g = 0; g < main; g += 32)
			for (int t = 0; t < 16; t++) {
				d[g + t] = s[g + 2 * t + 1];
				d[g + 16 + t] = s[g + 2 * t];
			}
		for (int k = main; k < cols; k++)
			d[k] = s[k];
	}
}

#pragma GCC pop_options
