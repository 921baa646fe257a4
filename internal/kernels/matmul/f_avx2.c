//go:build cgo && amd64

// AVX2+FMA+F16C kernels for F32, F16 and BF16 weights (F16 widened with
// vcvtph2ps, BF16 by a 16-bit shift; both exact).
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC push_options
// Exact IEEE operations as written: no contraction of a*b+c into an FMA
// (explicit FMAs only), so every tile shape computes identical values.
#pragma GCC optimize("fp-contract=off")
#pragma GCC target("avx2,fma,f16c")

#define FK_ISA avx2
#define FV __m256
#define FW 8
#define FV_ZERO() _mm256_setzero_ps()
#define FV_LOAD(p) _mm256_loadu_ps(p)
#define FV_STORE(p, v) _mm256_storeu_ps(p, v)
#define FV_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FV_ADD(a, b) _mm256_add_ps(a, b)

static inline __attribute__((always_inline)) float hsum8_avx2(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#define FV_HSUM(v) hsum8_avx2(v)

static inline __attribute__((always_inline)) __m256 loadw_avx2(int T, const uint8_t *p) {
	if (T == 0)
		return _mm256_loadu_ps((const float *)p);
	__m128i h = _mm_loadu_si128((const __m128i *)p);
	if (T == 1)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#define FLOADW(T, p) loadw_avx2(T, p)

// 6×16 micro-kernel: c[i*ldc + t] (+)= Σ_k a[k*6+i]·b[k*16+t].
#define FK_MR 6
#define FK_NR 16
static void kern6x16_avx2(int kc, const float *a, const float *b, float *c, size_t ldc, int first) {
	__m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
	if (first) {
		c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
	} else {
		c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
		c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
		c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
		c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
		c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
		c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
	}
#pragma GCC unroll 4
	for (int k = 0; k < kc; k++) {
		const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
		__m256 av;
		av = _mm256_broadcast_ss(a + 0);
		c00 = _mm256_fmadd_ps(av, b0, c00), c01 = _mm256_fmadd_ps(av, b1, c01);
		av = _mm256_broadcast_ss(a + 1);
		c10 = _mm256_fmadd_ps(av, b0, c10), c11 = _mm256_fmadd_ps(av, b1, c11);
		av = _mm256_broadcast_ss(a + 2);
		c20 = _mm256_fmadd_ps(av, b0, c20), c21 = _mm256_fmadd_ps(av, b1, c21);
		av = _mm256_broadcast_ss(a + 3);
		c30 = _mm256_fmadd_ps(av, b0, c30), c31 = _mm256_fmadd_ps(av, b1, c31);
		av = _mm256_broadcast_ss(a + 4);
		c40 = _mm256_fmadd_ps(av, b0, c40), c41 = _mm256_fmadd_ps(av, b1, c41);
		av = _mm256_broadcast_ss(a + 5);
		c50 = _mm256_fmadd_ps(av, b0, c50), c51 = _mm256_fmadd_ps(av, b1, c51);
		a += 6;
		b += 16;
	}
	_mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
	_mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
	_mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
	_mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
	_mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
	_mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}
#define FK_KERNEL(kc, a, b, c, ldc, first) kern6x16_avx2(kc, a, b, c, ldc, first)

#include "fkern.h"

#pragma GCC pop_options
