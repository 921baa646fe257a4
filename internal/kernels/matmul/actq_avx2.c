//go:build cgo && amd64

// AVX2 activation quantizers: Q8_0, Q8_1 and Q8_K blocks bit-identical to
// the quant package's activation quantizers for finite inputs: Q8_0 and
// Q8_1 as llama.cpp's x86 CPU backend quantizes them (products
// x·(127/amax), rounded half to even), Q8_K as ggml's reference (x86 has
// no other). Scales are computed with the same scalar float operations.
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#pragma GCC optimize("fp-contract=off")

static inline __attribute__((always_inline)) float amax_avx2(const float *x, int n) {
	const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256 m = _mm256_setzero_ps();
	for (int i = 0; i < n; i += 8)
		m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), mask));
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

// 32 int32 in four vectors → 32 int8 in order.
static inline __attribute__((always_inline)) __m256i pack32_avx2(__m256i a, __m256i b, __m256i c, __m256i d) {
	__m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
	__m256i r = _mm256_packs_epi16(ab, cd);
	return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline __attribute__((always_inline)) void q8_block(const float *x, uint8_t *b, int withsum) {
	const float amax = amax_avx2(x, 32);
	const float d = amax / 127;
	const float id = amax != 0 ? 127 / amax : 0.0f;
	uint16_t h = _cvtss_sh(d, 0);
	memcpy(b, &h, 2);
	const __m256 idv = _mm256_set1_ps(id);
	__m256i q[4];
	for (int k = 0; k < 4; k++)
		q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), idv),
			_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	__m256i packed = pack32_avx2(q[0], q[1], q[2], q[3]);
	_mm256_storeu_si256((__m256i *)(b + (withsum ? 4 : 2)), packed);
	if (withsum) {
		__m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
		int32_t t[8];
		_mm256_storeu_si256((__m256i *)t, s);
		int sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
		uint16_t hs = _cvtss_sh((float)sum * d, 0);
		memcpy(b + 2, &hs, 2);
	}
}

void mica_quant_q8_0_avx2(const float *x, int n, uint8_t *dst) {
	for (int i = 0; i < n / 32; i++)
		q8_block(x + 32 * i, dst + 34 * i, 0);
}

void mica_quant_q8_1_avx2(const float *x, int n, uint8_t *dst) {
	for (int i = 0; i < n / 32; i++)
		q8_block(x + 32 * i, dst + 36 * i, 1);
}

void mica_quant_q8_k_avx2(const float *x, int n, uint8_t *dst) {
	for (int i = 0; i < n / 256; i++, x += 256, dst += 292) {
		const float amax = amax_avx2(x, 256);
		if (amax == 0) {
			memset(dst, 0, 292);
			continue;
		}
		float vmax = 0;
		for (int j = 0; j < 256; j++) // the first value of largest magnitude
			if ((x[j] < 0 ? -x[j] : x[j]) == amax) {
				vmax = x[j];
				break;
			}
		const float iscale = -127.f / vmax;
		const __m256 is = _mm256_set1_ps(iscale);
		for (int c = 0; c < 8; c++) {
			__m256i q[4];
			for (int k = 0; k < 4; k++) {
				__m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * k), is),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
				q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(127));
			}
			_mm256_storeu_si256((__m256i *)(dst + 4 + 32 * c), pack32_avx2(q[0], q[1], q[2], q[3]));
			// group sums of 16: groups 2c (q0, q1) and 2c+1 (q2, q3)
			int32_t t[8];
			_mm256_storeu_si256((__m256i *)t, _mm256_add_epi32(q[0], q[1]));
			int16_t s0 = (int16_t)(t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7]);
			_mm256_storeu_si256((__m256i *)t, _mm256_add_epi32(q[2], q[3]));
			int16_t s1 = (int16_t)(t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7]);
			memcpy(dst + 260 + 4 * c, &s0, 2);
			memcpy(dst + 262 + 4 * c, &s1, 2);
		}
		const float d = 1 / iscale;
		memcpy(dst, &d, 4);
	}
}

#pragma GCC pop_options
