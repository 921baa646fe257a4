//go:build cgo && amd64

// AVX2+FMA+F16C kernels for F32, F16 and BF16 weights (fkern.h): each
// output's 16 lanes in two __m256; F16 widened with vcvtph2ps, BF16 by
// 16-bit shifts (both exact). Also the activation rounding of Prepare.
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

// Tiles: F32 (and F16 widened by packw) 3×2 (12 accumulators + 3 weight
// vectors + 1 activation vector = 16 registers), BF16 3×2 (12 + 2
// activation vectors + 1 weight vector), matrix-vector 4×1.
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

#include "fkern.h"

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
