//go:build cgo && amd64

// AVX2 kernels for package sample: the threshold scan (collectAbove in
// scan.go) and the exponential weights and block masses (exp.go). Each has
// a plain-Go twin that the tests compare against; the exp kernels are
// bit-identical to theirs. The target is avx2 without fma, so no multiply
// and add are ever fused.

#include <immintrin.h>
#include <stdint.h>

#define AVX2 __attribute__((target("avx2")))

// mica_sample_collect_above writes to out (at most cap entries) the indices
// i in [0, n) with !(x[i] <= thr), increasing, and stores in *next where the
// scan stopped: n when done, else the first index not examined. Blocks of
// 32 are taken whole, so it stops before a block that might not fit.
AVX2 long mica_sample_collect_above(const float *x, long n, float thr, int32_t *out, long cap, long *next) {
	const __m256 t = _mm256_set1_ps(thr);
	long cnt = 0, i = 0;
	for (; i + 32 <= n; i += 32) {
		// NLE_UQ: not (x <= thr), true for NaN.
		const __m256 a = _mm256_cmp_ps(_mm256_loadu_ps(x + i), t, _CMP_NLE_UQ);
		const __m256 b = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), t, _CMP_NLE_UQ);
		const __m256 c = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 16), t, _CMP_NLE_UQ);
		const __m256 d = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 24), t, _CMP_NLE_UQ);
		const __m256 any = _mm256_or_ps(_mm256_or_ps(a, b), _mm256_or_ps(c, d));
		if (!_mm256_movemask_ps(any)) {
			continue;
		}
		uint32_t bits = (uint32_t)_mm256_movemask_ps(a) | (uint32_t)_mm256_movemask_ps(b) << 8 |
			(uint32_t)_mm256_movemask_ps(c) << 16 | (uint32_t)_mm256_movemask_ps(d) << 24;
		if (cnt + __builtin_popcount(bits) > cap) {
			*next = i;
			return cnt;
		}
		while (bits) {
			out[cnt++] = (int32_t)(i + __builtin_ctz(bits));
			bits &= bits - 1;
		}
	}
	for (; i < n; i++) {
		if (!(x[i] <= thr)) {
			if (cnt == cap) {
				*next = i;
				return cnt;
			}
			out[cnt++] = (int32_t)i;
		}
	}
	*next = n;
	return cnt;
}

// ---------------------------------------------------------------------------
// exp32 (see exp.go: the same operations in the same order; this file is
// compiled with target avx2 only, so no multiply-add is ever fused).

static inline AVX2 __m256 v_exp32(__m256 x) {
	const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_GE_OQ); // false for NaN
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.33654f)); // keeps the bit tricks in range
	const __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
	const __m256 k = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_sub_ps(x, _mm256_mul_ps(k, _mm256_set1_ps(0.693359375f)));
	r = _mm256_sub_ps(r, _mm256_mul_ps(k, _mm256_set1_ps(-2.12194440e-4f)));
	__m256 p = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(1.0f / 720), r), _mm256_set1_ps(1.0f / 120));
	p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24));
	p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6));
	p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
	p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
	p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
	const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
	return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

static inline AVX2 __m256 shifted(const float *x, __m256 m, __m256 s) {
	return _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x), m), s);
}

// The scalar tail goes through the vector code on a padded copy, so that
// every weight comes from v_exp32.
static inline AVX2 __m256 shifted_tail(const float *x, long n, __m256 m, __m256 s) {
	float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	for (long j = 0; j < n; j++) tmp[j] = x[j];
	return _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(tmp), m), s);
}

AVX2 void mica_sample_exp_shift(const float *x, long n, float m, float scale, float *out) {
	const __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(scale);
	long i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, v_exp32(shifted(x + i, vm, vs)));
	if (i < n) {
		float tmp[8];
		_mm256_storeu_ps(tmp, v_exp32(shifted_tail(x + i, n - i, vm, vs)));
		for (long j = 0; j < n - i; j++) out[i + j] = tmp[j];
	}
}

// Block masses as in exp.go's blockMass: lanes 0-3 of each group of eight
// accumulate in lo, lanes 4-7 in hi (partials i mod 8); a partial tail
// group adds zeros in its unused lanes, which changes no sum.
AVX2 double mica_sample_sum_exp_blocks(const float *x, long n, float m, float scale, long block, double *sums, long nblocks) {
	const __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(scale);
	double total = 0;
	for (long b = 0; b < nblocks; b++) {
		const long start = b * block;
		const long end = start + block < n ? start + block : n;
		__m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
		long i = start;
		for (; i + 8 <= end; i += 8) {
			const __m256 w = v_exp32(shifted(x + i, vm, vs));
			lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
			hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
		}
		if (i < end) {
			__m256 w = v_exp32(shifted_tail(x + i, end - i, vm, vs));
			const __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(end - i)),
				_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
			w = _mm256_and_ps(w, live);
			lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
			hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
		}
		double q[4];
		_mm256_storeu_pd(q, _mm256_add_pd(lo, hi));
		sums[b] = (q[0] + q[1]) + (q[2] + q[3]);
		total += sums[b];
	}
	return total;
}
