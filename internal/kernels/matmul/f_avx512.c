//go:build cgo && amd64

// AVX-512F kernels for F32, F16 and BF16 weights: 16-lane vectors and a
// 12×32 GEMM micro-kernel (24 of the 32 zmm registers hold the Y tile).
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC push_options
// Exact IEEE operations as written: no contraction of a*b+c into an FMA
// (explicit FMAs only), so every tile shape computes identical values.
#pragma GCC optimize("fp-contract=off")
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")

#define FK_ISA avx512
#define FV __m512
#define FW 16
#define FV_ZERO() _mm512_setzero_ps()
#define FV_LOAD(p) _mm512_loadu_ps(p)
#define FV_STORE(p, v) _mm512_storeu_ps(p, v)
#define FV_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FV_ADD(a, b) _mm512_add_ps(a, b)

static inline __attribute__((always_inline)) float hsum16_avx512(__m512 v) {
	__m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#define FV_HSUM(v) hsum16_avx512(v)

static inline __attribute__((always_inline)) __m512 loadw_avx512(int T, const uint8_t *p) {
	if (T == 0)
		return _mm512_loadu_ps((const float *)p);
	__m256i h = _mm256_loadu_si256((const __m256i *)p);
	if (T == 1)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#define FLOADW(T, p) loadw_avx512(T, p)

#define FK_MR 12
#define FK_NR 32
static void kern12x32_avx512(int kc, const float *a, const float *b, float *c, size_t ldc, int first) {
	__m512 acc[12][2];
	#pragma GCC unroll 12
	for (int i = 0; i < 12; i++) {
		acc[i][0] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc);
		acc[i][1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc + 16);
	}
	#pragma GCC unroll 2
	for (int k = 0; k < kc; k++) {
		const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
		#pragma GCC unroll 12
		for (int i = 0; i < 12; i++) {
			const __m512 av = _mm512_set1_ps(a[i]);
			acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
			acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
		}
		a += 12;
		b += 32;
	}
	#pragma GCC unroll 12
	for (int i = 0; i < 12; i++) {
		_mm512_storeu_ps(c + i * ldc, acc[i][0]);
		_mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
	}
}
#define FK_KERNEL(kc, a, b, c, ldc, first) kern12x32_avx512(kc, a, b, c, ldc, first)

#include "fkern.h"

#pragma GCC pop_options
