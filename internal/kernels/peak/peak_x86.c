//go:build cgo && amd64

// SIMD loops for the read-bandwidth and FMA-peak measurements.
#include <immintrin.h>
#include <stdint.h>
#include <stddef.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// Sum of 64-bit words, four 256-bit accumulators (128 bytes a step).
uint64_t mica_sum_avx2(const uint8_t *p, size_t n) {
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 128 <= n; i += 128) {
		a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
		a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
		a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
		a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
	}
	a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
	uint64_t s[4];
	_mm256_storeu_si256((__m256i *)s, a0);
	uint64_t t = s[0] + s[1] + s[2] + s[3];
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		__builtin_memcpy(&w, p + i, 8);
		t += w;
	}
	for (; i < n; i++)
		t += p[i];
	return t;
}

// The same sum over four equal consecutive quarters read side by side (128
// bytes of each a step): four sequential streams, as the matrix-vector
// kernels read four runs of rows at once. Several streams keep more
// DRAM pages open than one, so they can read faster.
uint64_t mica_sum4_avx2(const uint8_t *p, size_t n) {
	const size_t q = n / 4 & ~(size_t)127;
	const uint8_t *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	for (size_t i = 0; i < q; i += 128) {
		for (int k = 0; k < 128; k += 64) {
			a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(s0 + i + k)),
				_mm256_loadu_si256((const __m256i *)(s0 + i + k + 32))));
			a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(s1 + i + k)),
				_mm256_loadu_si256((const __m256i *)(s1 + i + k + 32))));
			a2 = _mm256_add_epi64(a2, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(s2 + i + k)),
				_mm256_loadu_si256((const __m256i *)(s2 + i + k + 32))));
			a3 = _mm256_add_epi64(a3, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(s3 + i + k)),
				_mm256_loadu_si256((const __m256i *)(s3 + i + k + 32))));
		}
	}
	a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
	uint64_t s[4];
	_mm256_storeu_si256((__m256i *)s, a0);
	return s[0] + s[1] + s[2] + s[3] + mica_sum_avx2(p + 4 * q, n - 4 * q);
}

// 12 independent 8-lane FMA chains in named registers (enough to cover
// FMA latency × throughput on current cores).
#define FMA12(F, c, a, b)                                                      \
	c##0 = F(c##0, a, b), c##1 = F(c##1, a, b), c##2 = F(c##2, a, b),        \
	c##3 = F(c##3, a, b), c##4 = F(c##4, a, b), c##5 = F(c##5, a, b),        \
	c##6 = F(c##6, a, b), c##7 = F(c##7, a, b), c##8 = F(c##8, a, b),        \
	c##9 = F(c##9, a, b), c##10 = F(c##10, a, b), c##11 = F(c##11, a, b)
#define SUM12(ADD, c) ADD(ADD(ADD(ADD(c##0, c##1), ADD(c##2, c##3)), ADD(ADD(c##4, c##5), ADD(c##6, c##7))), \
	ADD(ADD(c##8, c##9), ADD(c##10, c##11)))

double mica_fma_avx2(long iters) {
	const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
	__m256 c0 = _mm256_set1_ps(0), c1 = _mm256_set1_ps(1), c2 = _mm256_set1_ps(2), c3 = _mm256_set1_ps(3),
	       c4 = _mm256_set1_ps(4), c5 = _mm256_set1_ps(5), c6 = _mm256_set1_ps(6), c7 = _mm256_set1_ps(7),
	       c8 = _mm256_set1_ps(8), c9 = _mm256_set1_ps(9), c10 = _mm256_set1_ps(10), c11 = _mm256_set1_ps(11);
	for (long i = 0; i < iters; i++) {
		FMA12(_mm256_fmadd_ps, c, a, b);
	}
	float s[8];
	_mm256_storeu_ps(s, SUM12(_mm256_add_ps, c));
	return s[0] == 42.0f ? 0 : (double)iters * 12 * 8 * 2;
}

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")

uint64_t mica_sum_avx512(const uint8_t *p, size_t n) {
	__m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 256 <= n; i += 256) {
		a0 = _mm512_add_epi64(a0, _mm512_loadu_si512((const void *)(p + i)));
		a1 = _mm512_add_epi64(a1, _mm512_loadu_si512((const void *)(p + i + 64)));
		a2 = _mm512_add_epi64(a2, _mm512_loadu_si512((const void *)(p + i + 128)));
		a3 = _mm512_add_epi64(a3, _mm512_loadu_si512((const void *)(p + i + 192)));
	}
	a0 = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
	uint64_t t = (uint64_t)_mm512_reduce_add_epi64(a0);
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		__builtin_memcpy(&w, p + i, 8);
		t += w;
	}
	for (; i < n; i++)
		t += p[i];
	return t;
}

double mica_fma_avx512(long iters) {
	const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
	__m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2), c3 = _mm512_set1_ps(3),
	       c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5), c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7),
	       c8 = _mm512_set1_ps(8), c9 = _mm512_set1_ps(9), c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
	for (long i = 0; i < iters; i++) {
		FMA12(_mm512_fmadd_ps, c, a, b);
	}
	return _mm512_reduce_add_ps(SUM12(_mm512_add_ps, c)) == 42.0f ? 0 : (double)iters * 12 * 16 * 2;
}

#pragma GCC pop_options
