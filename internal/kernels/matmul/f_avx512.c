//go:build cgo && amd64

// AVX-512F kernels for F32, F16 and BF16 weights (fkern.h): each output's
// 16 lanes in one __m512, the same lane order and reduction tree as the
// AVX2 kernels and the reference.
#ifdef MICA_AVX512_EMU
// Test builds (go test -tags avx512emu, emu512.go): the AVX-512
// instructions come from SIMDe's portable implementations, so these kernels
// run (slowly) on a CPU without AVX-512.
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
// SIMDe 0.7 has no _mm512_cvtph_ps: two F16C halves.
static inline __m512 emu_cvtph_ps(__m256i h) {
	const __m512 lo = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm256_castsi256_si128(h)));
	const __m256 hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
	return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(lo), _mm256_castps_pd(hi), 1));
}
#define _mm512_cvtph_ps emu_cvtph_ps
#else
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC push_options
// Exact IEEE operations as written: no contraction of a*b+c into an FMA
// (explicit FMAs only), so every path computes identical values.
#pragma GCC optimize("fp-contract=off")
#ifndef MICA_AVX512_EMU
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")
#endif

#define FK_ISA avx512
#define FV __m512
#define FW 16
#define FK_NH 1
#define FV_ZERO() _mm512_setzero_ps()
#define FV_LOAD(p) _mm512_loadu_ps(p)
#define FV_STORE(p, v) _mm512_storeu_ps(p, v)
#ifdef MICA_AVX512_EMU
#define FK_REG(v) ((void)0) // an emulated __m512 is no register
#else
#define FK_REG(v) __asm__("" : "+v"(v))
#endif
#define FV_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)

// lanes j += j+8, j += j+4, then (l0+l2)+(l1+l3), written out (not
// _mm512_reduce_add_ps, whose order is the compiler's business)
static inline __attribute__((always_inline)) float red16_avx512(__m512 v) {
	const __m256 lo = _mm512_castps512_ps256(v);
	const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
	const __m256 h = _mm256_add_ps(lo, hi);
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#define FV_RED16(v) red16_avx512((v)[0])

static inline __attribute__((always_inline)) __m512 loadw_avx512(int T, const uint8_t *p) {
	if (T == 0)
		return _mm512_loadu_ps((const float *)p);
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
#define FLOADW(T, p) loadw_avx512(T, p)

// Of 32 BF16 weights: the 16 odd columns (high halves of the dwords) and
// the 16 even ones (low halves), widened.
#define FLOADBF_ODD(p) \
	_mm512_castsi512_ps(_mm512_and_si512(_mm512_loadu_si512((const void *)(p)), _mm512_set1_epi32((int)0xffff0000)))
#define FLOADBF_EVEN(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512((const void *)(p)), 16))

// Tiles (n > 1): F32 (and F16 widened by packw) 4×4 (16 accumulators + 4
// weight vectors + 1 activation vector of the 32 registers), BF16 4×3 (12 +
// 3 activation vectors + 1 weight vector).
#define FK_RM 4
#define FK_RN 4
#define FK_RMB 4
#define FK_RNB 3
#define FK_MM 4
#define FK_MN 4
#define FK_TILES_0(X)                                                                                \
	X(0, 1, 1) X(0, 2, 1) X(0, 3, 1) X(0, 4, 1) X(0, 1, 2) X(0, 2, 2) X(0, 3, 2) X(0, 4, 2) X(0, 1, 3) \
	X(0, 2, 3) X(0, 3, 3) X(0, 4, 3) X(0, 1, 4) X(0, 2, 4) X(0, 3, 4) X(0, 4, 4)
#define FK_TILES_31(X)                                                                                    \
	X(31, 1, 1) X(31, 2, 1) X(31, 3, 1) X(31, 4, 1) X(31, 1, 2) X(31, 2, 2) X(31, 3, 2) X(31, 4, 2)         \
	X(31, 1, 3) X(31, 2, 3) X(31, 3, 3) X(31, 4, 3)

#include "fkern.h"

#pragma GCC pop_options
