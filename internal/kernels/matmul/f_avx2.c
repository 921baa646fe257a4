//go:build cgo && amd64

// AVX2+FMA+F16C kernels for F32, F16 and BF16 weights: each output's 16
// lanes in two __m256; F16 widened with vcvtph2ps, BF16 by 16-bit shifts
// (both exact). Matrix-vector and small batches by fkern.h's tiles, n > 48
// by gemm_avx2 (half lanes, packed operands; below). Also the activation
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
// activation vectors + 1 weight vector), matrix-vector 6×1. They run n = 1
// and n ≤ FK_JB (48, one activation block: there the weights are widened
// once per call and the old tiles are as fast or faster); larger n run
// gemm_avx2 below.
#define FK_RM 3
#define FK_RN 2
#define FK_RMB 3
#define FK_RNB 2
#define FK_RMV 6
#define FK_MM 6
#define FK_MN 2
#define FK_TILES_0(X) X(0, 1, 1) X(0, 2, 1) X(0, 3, 1) X(0, 4, 1) X(0, 5, 1) X(0, 6, 1) X(0, 1, 2) X(0, 2, 2) X(0, 3, 2)
#define FK_TILES_1(X) X(1, 1, 1) X(1, 2, 1) X(1, 3, 1) X(1, 4, 1) X(1, 5, 1) X(1, 6, 1)
#define FK_TILES_30(X) X(30, 1, 1) X(30, 2, 1) X(30, 3, 1) X(30, 4, 1) X(30, 5, 1) X(30, 6, 1)
#define FK_TILES_31(X) X(31, 1, 1) X(31, 2, 1) X(31, 3, 1) X(31, 1, 2) X(31, 2, 2) X(31, 3, 2)

static __attribute__((noinline)) int gemm_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y, size_t ldy,
	int r0, int r1);
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
// reduction: the bits of the matrix-vector tiles and of the reference.
//
// Both operands are packed into that order, as float32 (F16 and BF16
// widened exactly): each block of G_JB activation rows once per call and
// thread (all columns, groups of G_RN rows: [group][half][v][row][8]), and
// each G_RM weight rows × column block once per activation block
// ([half][v][row][8], about 16 KiB: stays in L1 while the activation
// groups stream past it from L2). Lane states cross column blocks through
// a per-thread scratch (stored and reloaded, exact).

#define G_RM 4
#define G_RN 3
#ifndef G_JB
#define G_JB 48 // activation rows per block (a multiple of G_RN)
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

// gpackx packs jn activation rows (stride cols), vectors [0, nv) of both
// halves: d[((g·2 + h)·nv + v)·G_RN·8 + jj·8 + l] = x[(G_RN·g + jj)·cols +
// 16v + 8h + l].
static void gpackx(const float *x, int cols, int jn, int nv, float *d) {
	for (int j = 0; j < jn; j++) {
		const float *s = x + (size_t)j * cols;
		for (int h = 0; h < 2; h++) {
			float *o = d + (size_t)(j / G_RN * 2 + h) * nv * (G_RN * 8) + j % G_RN * 8;
			for (int v = 0; v < nv; v++)
				_mm256_storeu_ps(o + (size_t)v * (G_RN * 8), _mm256_loadu_ps(s + 16 * v + 8 * h));
		}
	}
}

// gpackw packs rm weight rows (stride wrb) of type T, vectors [v0, v0 + nvb)
// of both halves, widened: d[(h·nvb + v − v0)·G_RM·8 + i·8 + l].
static inline __attribute__((always_inline)) void gpackw_t(int T, const uint8_t *w, size_t wrb, int rm, int v0,
	int nvb, float *d) {
	const __m256i hi = _mm256_set1_epi32((int)0xffff0000);
	for (int i = 0; i < rm; i++) {
		const uint8_t *src = w + (size_t)i * wrb;
		for (int h = 0; h < 2; h++) {
			float *o = d + (size_t)h * nvb * (G_RM * 8) + i * 8;
			for (int v = v0; v < v0 + nvb; v++) {
				__m256 f;
				if (T == FT_F32)
					f = _mm256_loadu_ps((const float *)src + 16 * v + 8 * h);
				else if (T == FT_F16)
					f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * (16 * v + 8 * h))));
				else {
					const __m256i raw = _mm256_loadu_si256((const __m256i *)(src + 2 * (32 * (v >> 1) + 16 * h)));
					f = _mm256_castsi256_ps(v & 1 ? _mm256_slli_epi32(raw, 16) : _mm256_and_si256(raw, hi));
				}
				_mm256_storeu_ps(o + (size_t)(v - v0) * (G_RM * 8), f);
			}
		}
	}
}

static void gpackw(int T, const uint8_t *w, size_t wrb, int rm, int v0, int nvb, float *d) {
	switch (T) {
	case FT_F32:
		gpackw_t(FT_F32, w, wrb, rm, v0, nvb, d);
		break;
	case FT_F16:
		gpackw_t(FT_F16, w, wrb, rm, v0, nvb, d);
		break;
	default:
		gpackw_t(FT_BF16, w, wrb, rm, v0, nvb, d);
	}
}

// ghalf runs half h of a tile over one column block: acc from zero
// (first) or from st, then one fma per lane per vector.
static inline __attribute__((always_inline)) void ghalf(int RM, int RN, int h, const float *wp, int nvb,
	const float *xp, size_t xhs, const float *st, size_t sti, int first, __m256 acc[G_RM][G_RN]) {
#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++)
			acc[i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(st + i * sti + j * 16 + 8 * h);
	const float *wv = wp + (size_t)h * nvb * (G_RM * 8), *xv = xp + h * xhs;
	for (int v = 0; v < nvb; v++, wv += G_RM * 8, xv += G_RN * 8) {
		__m256 xr[G_RN];
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++) {
			xr[j] = _mm256_loadu_ps(xv + 8 * j);
			FK_REG(xr[j]);
		}
#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			__m256 a = _mm256_loadu_ps(wv + 8 * i);
			FK_REG(a);
#pragma GCC unroll 3
			for (int j = 0; j < RN; j++)
				acc[i][j] = _mm256_fmadd_ps(a, xr[j], acc[i][j]);
		}
	}
}

// One tile, RM ≤ G_RM weight rows × RN ≤ G_RN activation rows, one column
// block of nvb vectors: wp the packed weights, xp the activation group at
// the block's first vector (halves xhs floats apart). first: lanes from
// zero, else from st; last: reduce, add the tail columns kmain.. cols − 1
// in order (w: the tile's weight rows, x: its activation rows, as
// MulRows got them) and write y[j·ldy + i], else store the lanes to st
// (output (i, j) at st + i·sti + j·16).
static inline __attribute__((always_inline)) void gtile(int RM, int RN, const float *wp, int nvb, const float *xp,
	size_t xhs, float *st, size_t sti, int first, int last, int T, const uint8_t *w, size_t wrb, const float *x,
	int cols, int kmain, float *y, size_t ldy) {
	float lo[G_RM * G_RN * 8] __attribute__((aligned(32)));
	__m256 acc[G_RM][G_RN];
	ghalf(RM, RN, 0, wp, nvb, xp, xhs, st, sti, first, acc);
#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 3
		for (int j = 0; j < RN; j++)
			_mm256_storeu_ps(last ? lo + (i * G_RN + j) * 8 : st + i * sti + j * 16, acc[i][j]);
	ghalf(RM, RN, 1, wp, nvb, xp, xhs, st, sti, first, acc);
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

typedef void (*gtilefn)(const float *wp, int nvb, const float *xp, size_t xhs, float *st, size_t sti, int first,
	int last, int T, const uint8_t *w, size_t wrb, const float *x, int cols, int kmain, float *y, size_t ldy);

#define G_DEFTILE(RM, RN)                                                                                          \
	static __attribute__((noinline)) void gtile_##RM##x##RN(const float *wp, int nvb, const float *xp, size_t xhs, \
		float *st, size_t sti, int first, int last, int T, const uint8_t *w, size_t wrb, const float *x, int cols, \
		int kmain, float *y, size_t ldy) {                                                                     \
		gtile(RM, RN, wp, nvb, xp, xhs, st, sti, first, last, T, w, wrb, x, cols, kmain, y, ldy);               \
	}
G_DEFTILE(1, 1) G_DEFTILE(1, 2) G_DEFTILE(1, 3)
G_DEFTILE(2, 1) G_DEFTILE(2, 2) G_DEFTILE(2, 3)
G_DEFTILE(3, 1) G_DEFTILE(3, 2) G_DEFTILE(3, 3)
G_DEFTILE(4, 1) G_DEFTILE(4, 2) G_DEFTILE(4, 3)

static const gtilefn gtab[G_RM][G_RN] = {
	{gtile_1x1, gtile_1x2, gtile_1x3},
	{gtile_2x1, gtile_2x2, gtile_2x3},
	{gtile_3x1, gtile_3x2, gtile_3x3},
	{gtile_4x1, gtile_4x2, gtile_4x3},
};

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

static __attribute__((noinline)) int gemm_avx2(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y, size_t ldy,
	int r0, int r1) {
	const int step = T == FT_BF16 ? 32 : 16;
	const int kmain = cols / step * step, nv = kmain / 16;
	// column blocks: as few as G_KV allows, of about equal size
	const int nkb = nv > G_KV ? (nv + G_KV - 1) / G_KV : 1;
	const int kv = (nv + nkb - 1) / nkb;
	// scratch, one set per OS thread, kept: packed activations and
	// weights, lane states between column blocks
	static _Thread_local float *xp, *wp, *st;
	static _Thread_local size_t xcap, wcap, scap;
	const size_t xhs = (size_t)nv * (G_RN * 8); // floats per half of a packed activation group
	if (!grow(&xp, &xcap, 2 * xhs * ((G_JB + G_RN - 1) / G_RN) + 8) || !grow(&wp, &wcap, 2 * G_KV * G_RM * 8) ||
		(nkb > 1 && !grow(&st, &scap, (size_t)G_JB * G_RB * 16)))
		return -1;
	const size_t sti = 16 * G_JB;
	for (int jb = 0; jb < n; jb += G_JB) {
		const int jn = n - jb < G_JB ? n - jb : G_JB;
		gpackx(x + (size_t)jb * cols, cols, jn, nv, xp);
		for (int rb = r0; rb < r1; rb += G_RB) {
			const int rn = r1 - rb < G_RB ? r1 - rb : G_RB;
			for (int v0 = 0;; v0 += kv) {
				const int nvb = nv - v0 < kv ? nv - v0 : kv;
				const int first = v0 == 0, last = v0 + nvb >= nv;
				const size_t wbytes = (size_t)nvb * 16 * (T == FT_F32 ? 4 : 2); // per weight row of the block
				for (int ig = 0; ig < rn; ig += G_RM) {
					const int rm = rn - ig < G_RM ? rn - ig : G_RM;
					const uint8_t *wr = w + (size_t)(rb + ig) * wrb;
					gpackw(T, wr, wrb, rm, v0, nvb, wp);
					// the next weight group's rows of this column block, into
					// L2 while this group's tiles run
					const int nrm = rn - ig - G_RM < G_RM ? rn - ig - G_RM : G_RM;
					for (int i = 0; i < nrm; i++) {
						const char *p = (const char *)(wr + (size_t)(G_RM + i) * wrb) + (size_t)v0 * 16 * (T == FT_F32 ? 4 : 2);
						for (size_t o = 0; o < wbytes + 64; o += 64)
							_mm_prefetch(p + o, G_WHINT);
					}
					for (int jg = 0; jg < jn; jg += G_RN) {
						const int jm = jn - jg < G_RN ? jn - jg : G_RN;
						gtab[rm - 1][jm - 1](wp, nvb, xp + (size_t)(jg / G_RN) * 2 * xhs + (size_t)v0 * (G_RN * 8), xhs,
							st + (size_t)ig * sti + (size_t)jg * 16, sti, first, last, T, wr, wrb,
							x + (size_t)(jb + jg) * cols, cols, kmain, y + (size_t)(jb + jg) * ldy + rb + ig, ldy);
					}
				}
				if (last)
					break;
			}
		}
	}
	return 0;
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
