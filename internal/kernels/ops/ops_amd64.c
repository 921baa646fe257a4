//go:build cgo && amd64

// AVX2+FMA+F16C fast paths for package ops. Every function here has a
// plain-Go twin (the oracle) in the package; the tests compare the two.
// Each function carries its own target attribute, so the file is compiled
// for baseline x86-64 and the Go side calls it only when the CPU has the
// features (see fast_amd64.go).

// Scalar tails must round like the Go reference: no contraction into FMA.
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

// ---------------------------------------------------------------------------
// exp

// v_exp computes e^x for 8 lanes. Method: x = n*ln2 + r with n an integer
// and |r| <= ln2/2 (Cody-Waite split of ln2 into a short head and a tail),
// e^r by its Taylor series to degree 7 (truncation error < 6e-9 relative),
// then the result is scaled by 2^n in two halves so that n in [-150, 128]
// never overflows the exponent field on the way. Inputs below -104 give 0,
// above ~88.72 give +Inf, NaN stays NaN. Measured accuracy: see
// TestExpAccuracy (max relative error against float64 math.Exp).
static inline AVX2 __m256 v_exp(__m256 x) {
	const __m256 lo = _mm256_set1_ps(-104.0f);
	const __m256 hi = _mm256_set1_ps(89.0f);
	// max(lo, x) and min(hi, x) return x when x is NaN.
	x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
	const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
	                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.0f / 5040.0f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	const __m256i ni = _mm256_cvtps_epi32(n);
	const __m256i k1 = _mm256_srai_epi32(ni, 1);
	const __m256i k2 = _mm256_sub_epi32(ni, k1);
	const __m256i bias = _mm256_set1_epi32(127);
	const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
	const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
	return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// v_tanh computes tanh(x) = sign(x) * (1 - 2/(e^(2|x|) + 1)). The absolute
// error is a few float32 ulps of 1 (the relative error grows for |x| << 1,
// which is harmless where it is used: scores multiplied by the cap, then
// exponentiated).
static inline AVX2 __m256 v_tanh(__m256 x) {
	const __m256 signmask = _mm256_set1_ps(-0.0f);
	const __m256 ax = _mm256_andnot_ps(signmask, x);
	const __m256 e = v_exp(_mm256_add_ps(ax, ax));
	const __m256 one = _mm256_set1_ps(1.0f);
	const __m256 t = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
	return _mm256_or_ps(t, _mm256_and_ps(signmask, x));
}

static inline AVX2 float hsum(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline AVX2 float hmax(__m256 v) {
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

// Loads n < 8 floats, zero-filling the rest.
static inline AVX2 __m256 load_partial(const float *x, int n) {
	float tmp[8] = {0};
	memcpy(tmp, x, (size_t)n * sizeof(float));
	return _mm256_loadu_ps(tmp);
}

static inline AVX2 void store_partial(float *y, __m256 v, int n) {
	float tmp[8];
	_mm256_storeu_ps(tmp, v);
	memcpy(y, tmp, (size_t)n * sizeof(float));
}

// mica_exp writes e^x[i] to y[i] (used by the accuracy test).
AVX2 void mica_exp(const float *x, float *y, long n) {
	long i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, v_exp(_mm256_loadu_ps(x + i)));
	if (i < n) store_partial(y + i, v_exp(load_partial(x + i, (int)(n - i))), (int)(n - i));
}

// mica_softcap: y = tanh(x*inv)*cap (Gemma's logit softcapping, in
// ggml's order: scale, tanh, scale).
AVX2 void mica_softcap(const float *x, float *y, long n, float inv, float cap) {
	const __m256 vi = _mm256_set1_ps(inv), vc = _mm256_set1_ps(cap);
	long i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(v_tanh(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi)), vc));
	if (i < n) {
		const int m = (int)(n - i);
		store_partial(y + i, _mm256_mul_ps(v_tanh(_mm256_mul_ps(load_partial(x + i, m), vi)), vc), m);
	}
}

// ---------------------------------------------------------------------------
// activations

static inline AVX2 __m256 v_silu(__m256 x) {
	const __m256 e = v_exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
	return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// mica_silu: y = x/(1+e^-x); with g != NULL, y = silu(x)*g (SwiGLU).
AVX2 void mica_silu(const float *x, const float *g, float *y, long n) {
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = v_silu(_mm256_loadu_ps(x + i));
		if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + i));
		_mm256_storeu_ps(y + i, v);
	}
	if (i < n) {
		int m = (int)(n - i);
		__m256 v = v_silu(load_partial(x + i, m));
		if (g) v = _mm256_mul_ps(v, load_partial(g + i, m));
		store_partial(y + i, v, m);
	}
}

// ---------------------------------------------------------------------------
// softmax

// Row-wise softmax of rows r0..r1-1 of length n: w = x*scale (+ mask row
// r % maskRows), y = e^(w - max w) / sum. The sum is accumulated in double,
// as ggml does; the final scale is float(1/sum).
AVX2 void mica_softmax_rows(const float *x, float *y, long n, float scale,
                            const float *mask, long maskRows, long r0, long r1) {
	const __m256 vs = _mm256_set1_ps(scale);
	for (long r = r0; r < r1; r++) {
		const float *xr = x + r * n;
		float *yr = y + r * n;
		const float *mr = mask ? mask + (r % maskRows) * n : NULL;
		__m256 vmax = _mm256_set1_ps(-INFINITY);
		float smax = -INFINITY;
		long i = 0;
		for (; i + 8 <= n; i += 8) {
			__m256 w = _mm256_mul_ps(_mm256_loadu_ps(xr + i), vs);
			if (mr) w = _mm256_add_ps(w, _mm256_loadu_ps(mr + i));
			_mm256_storeu_ps(yr + i, w);
			vmax = _mm256_max_ps(vmax, w);
		}
		for (; i < n; i++) {
			float w = xr[i] * scale;
			if (mr) w += mr[i];
			yr[i] = w;
			if (w > smax) smax = w;
		}
		float m = hmax(vmax);
		if (smax > m) m = smax;
		if (m == -INFINITY) { // every entry masked: ggml would divide by zero; give zeros
			memset(yr, 0, (size_t)n * sizeof(float));
			continue;
		}
		const __m256 vm = _mm256_set1_ps(m);
		__m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
		i = 0;
		for (; i + 8 <= n; i += 8) {
			__m256 e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(yr + i), vm));
			_mm256_storeu_ps(yr + i, e);
			acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
			acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
		}
		double sum = 0;
		if (i < n) {
			int k = (int)(n - i);
			__m256 e = v_exp(_mm256_sub_ps(load_partial(yr + i, k), vm));
			float tmp[8];
			_mm256_storeu_ps(tmp, e);
			for (int j = 0; j < k; j++) { yr[i + j] = tmp[j]; sum += (double)tmp[j]; }
		}
		double lanes[4];
		_mm256_storeu_pd(lanes, _mm256_add_pd(acc0, acc1));
		sum += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
		const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
		i = 0;
		for (; i + 8 <= n; i += 8) _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(yr + i), inv));
		for (; i < n; i++) yr[i] *= (float)(1.0 / sum);
	}
}

// ---------------------------------------------------------------------------
// RMSNorm

// Rows r0..r1-1 of length n: y = x * (1/sqrtf(mean(x*x) + eps)) [* w].
// Squares are rounded to float and summed in double (ggml's arithmetic; only
// the order of the double additions differs).
AVX2 void mica_rmsnorm_rows(const float *x, const float *w, float *y, long n, float eps, long r0, long r1) {
	for (long r = r0; r < r1; r++) {
		const float *xr = x + r * n;
		float *yr = y + r * n;
		__m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
		long i = 0;
		for (; i + 8 <= n; i += 8) {
			__m256 v = _mm256_loadu_ps(xr + i);
			v = _mm256_mul_ps(v, v);
			a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
			a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
		}
		double lanes[4];
		_mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
		double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
		for (; i < n; i++) sum += (double)(xr[i] * xr[i]);
		const float mean = (float)(sum / (double)n);
		const float scale = 1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(mean + eps))); // = sqrtf, correctly rounded
		const __m256 vs = _mm256_set1_ps(scale);
		i = 0;
		for (; i + 8 <= n; i += 8) {
			__m256 v = _mm256_mul_ps(_mm256_loadu_ps(xr + i), vs);
			if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
			_mm256_storeu_ps(yr + i, v);
		}
		for (; i < n; i++) {
			float v = xr[i] * scale;
			if (w) v = v * w[i];
			yr[i] = v;
		}
	}
}

// ---------------------------------------------------------------------------
// attention

typedef struct {
	long nhead, nkvhead, d, dv, nkv;
	long q_row, q_head;   // q element (i,h,e) at i*q_row + h*q_head + e
	long k_row, k_head;   // k element (j,g,e) at j*k_row + g*k_head + e
	long v_row, v_head;
	long o_row, o_head;
	long mask_row;        // mask element (i,j) at i*mask_row + j
	float scale, softcap;
	int causal, window, kf16, vf16;
} mica_attn_cfg;

#define ATTN_BLOCK 64

static inline AVX2 __m256 load_k8(const void *k, long off, int f16) {
	if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)k + off)));
	return _mm256_loadu_ps((const float *)k + off);
}

static inline AVX2 float scalar_k(const void *k, long off, int f16) {
	if (f16) {
		uint16_t h = ((const uint16_t *)k)[off];
		return _cvtsh_ss(h);
	}
	return ((const float *)k)[off];
}

// Dot products of queries with keys. Every (query, key) dot uses exactly
// one 8-lane accumulator, fed 8 dimensions at a time in order, then a fixed
// horizontal sum, then the scalar tail: so its value does not depend on how
// many queries or keys are computed together. Key jj of a call starts at
// element base + jj*stride. Several keys (and, for GQA, two heads) at once
// give the independent FMA chains that hide the FMA latency and share loads.

static inline AVX2 float dot_tail(float s, const float *q, const void *k, long off, long e, long d, int f16) {
	for (; e < d; e++) s += q[e] * scalar_k(k, off + e, f16);
	return s;
}

// out[jj] = q · key jj, jj < nk.
static AVX2 void dot_keys(const float *q, const void *k, long base, long stride, long d, int f16, int nk, float *out) {
	int jj = 0;
	for (; jj + 8 <= nk; jj += 8) {
		const long o = base + jj * stride;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
		__m256 a4 = _mm256_setzero_ps(), a5 = _mm256_setzero_ps(), a6 = _mm256_setzero_ps(), a7 = _mm256_setzero_ps();
		long e = 0;
		for (; e + 8 <= d; e += 8) {
			const __m256 qv = _mm256_loadu_ps(q + e);
			a0 = _mm256_fmadd_ps(qv, load_k8(k, o + e, f16), a0);
			a1 = _mm256_fmadd_ps(qv, load_k8(k, o + stride + e, f16), a1);
			a2 = _mm256_fmadd_ps(qv, load_k8(k, o + 2 * stride + e, f16), a2);
			a3 = _mm256_fmadd_ps(qv, load_k8(k, o + 3 * stride + e, f16), a3);
			a4 = _mm256_fmadd_ps(qv, load_k8(k, o + 4 * stride + e, f16), a4);
			a5 = _mm256_fmadd_ps(qv, load_k8(k, o + 5 * stride + e, f16), a5);
			a6 = _mm256_fmadd_ps(qv, load_k8(k, o + 6 * stride + e, f16), a6);
			a7 = _mm256_fmadd_ps(qv, load_k8(k, o + 7 * stride + e, f16), a7);
		}
		out[jj + 0] = dot_tail(hsum(a0), q, k, o, e, d, f16);
		out[jj + 1] = dot_tail(hsum(a1), q, k, o + stride, e, d, f16);
		out[jj + 2] = dot_tail(hsum(a2), q, k, o + 2 * stride, e, d, f16);
		out[jj + 3] = dot_tail(hsum(a3), q, k, o + 3 * stride, e, d, f16);
		out[jj + 4] = dot_tail(hsum(a4), q, k, o + 4 * stride, e, d, f16);
		out[jj + 5] = dot_tail(hsum(a5), q, k, o + 5 * stride, e, d, f16);
		out[jj + 6] = dot_tail(hsum(a6), q, k, o + 6 * stride, e, d, f16);
		out[jj + 7] = dot_tail(hsum(a7), q, k, o + 7 * stride, e, d, f16);
	}
	for (; jj < nk; jj++) {
		const long o = base + jj * stride;
		__m256 a0 = _mm256_setzero_ps();
		long e = 0;
		for (; e + 8 <= d; e += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + e), load_k8(k, o + e, f16), a0);
		out[jj] = dot_tail(hsum(a0), q, k, o, e, d, f16);
	}
}

// out0[jj] = q0 · key jj and out1[jj] = q1 · key jj, jj < nk.
static AVX2 void dot_keys2(const float *q0, const float *q1, const void *k, long base, long stride, long d, int f16,
                           int nk, float *out0, float *out1) {
	int jj = 0;
	for (; jj + 4 <= nk; jj += 4) {
		const long o = base + jj * stride;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
		__m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
		long e = 0;
		for (; e + 8 <= d; e += 8) {
			const __m256 x0 = _mm256_loadu_ps(q0 + e), x1 = _mm256_loadu_ps(q1 + e);
			__m256 kv = load_k8(k, o + e, f16);
			a0 = _mm256_fmadd_ps(x0, kv, a0);
			b0 = _mm256_fmadd_ps(x1, kv, b0);
			kv = load_k8(k, o + stride + e, f16);
			a1 = _mm256_fmadd_ps(x0, kv, a1);
			b1 = _mm256_fmadd_ps(x1, kv, b1);
			kv = load_k8(k, o + 2 * stride + e, f16);
			a2 = _mm256_fmadd_ps(x0, kv, a2);
			b2 = _mm256_fmadd_ps(x1, kv, b2);
			kv = load_k8(k, o + 3 * stride + e, f16);
			a3 = _mm256_fmadd_ps(x0, kv, a3);
			b3 = _mm256_fmadd_ps(x1, kv, b3);
		}
		out0[jj + 0] = dot_tail(hsum(a0), q0, k, o, e, d, f16);
		out0[jj + 1] = dot_tail(hsum(a1), q0, k, o + stride, e, d, f16);
		out0[jj + 2] = dot_tail(hsum(a2), q0, k, o + 2 * stride, e, d, f16);
		out0[jj + 3] = dot_tail(hsum(a3), q0, k, o + 3 * stride, e, d, f16);
		out1[jj + 0] = dot_tail(hsum(b0), q1, k, o, e, d, f16);
		out1[jj + 1] = dot_tail(hsum(b1), q1, k, o + stride, e, d, f16);
		out1[jj + 2] = dot_tail(hsum(b2), q1, k, o + 2 * stride, e, d, f16);
		out1[jj + 3] = dot_tail(hsum(b3), q1, k, o + 3 * stride, e, d, f16);
	}
	if (jj < nk) {
		dot_keys(q0, k, base + jj * stride, stride, d, f16, nk - jj, out0 + jj);
		dot_keys(q1, k, base + jj * stride, stride, d, f16, nk - jj, out1 + jj);
	}
}

// acc[0..dv) += sum_j p[j] * v_row(j) over the nb keys of a block.
static inline AVX2 void mad_block(float *acc, const float *p, const void *v, const long *voff, int nb, long dv, int f16) {
	long e = 0;
	// 64 columns at a time: eight independent FMA chains hide the FMA latency
	for (; e + 64 <= dv; e += 64) {
		__m256 a0 = _mm256_loadu_ps(acc + e), a1 = _mm256_loadu_ps(acc + e + 8);
		__m256 a2 = _mm256_loadu_ps(acc + e + 16), a3 = _mm256_loadu_ps(acc + e + 24);
		__m256 a4 = _mm256_loadu_ps(acc + e + 32), a5 = _mm256_loadu_ps(acc + e + 40);
		__m256 a6 = _mm256_loadu_ps(acc + e + 48), a7 = _mm256_loadu_ps(acc + e + 56);
		for (int j = 0; j < nb; j++) {
			if (p[j] == 0.0f) continue;
			const __m256 pj = _mm256_set1_ps(p[j]);
			const long o = voff[j] + e;
			a0 = _mm256_fmadd_ps(pj, load_k8(v, o, f16), a0);
			a1 = _mm256_fmadd_ps(pj, load_k8(v, o + 8, f16), a1);
			a2 = _mm256_fmadd_ps(pj, load_k8(v, o + 16, f16), a2);
			a3 = _mm256_fmadd_ps(pj, load_k8(v, o + 24, f16), a3);
			a4 = _mm256_fmadd_ps(pj, load_k8(v, o + 32, f16), a4);
			a5 = _mm256_fmadd_ps(pj, load_k8(v, o + 40, f16), a5);
			a6 = _mm256_fmadd_ps(pj, load_k8(v, o + 48, f16), a6);
			a7 = _mm256_fmadd_ps(pj, load_k8(v, o + 56, f16), a7);
		}
		_mm256_storeu_ps(acc + e, a0);
		_mm256_storeu_ps(acc + e + 8, a1);
		_mm256_storeu_ps(acc + e + 16, a2);
		_mm256_storeu_ps(acc + e + 24, a3);
		_mm256_storeu_ps(acc + e + 32, a4);
		_mm256_storeu_ps(acc + e + 40, a5);
		_mm256_storeu_ps(acc + e + 48, a6);
		_mm256_storeu_ps(acc + e + 56, a7);
	}
	for (; e + 32 <= dv; e += 32) {
		__m256 a0 = _mm256_loadu_ps(acc + e), a1 = _mm256_loadu_ps(acc + e + 8);
		__m256 a2 = _mm256_loadu_ps(acc + e + 16), a3 = _mm256_loadu_ps(acc + e + 24);
		for (int j = 0; j < nb; j++) {
			if (p[j] == 0.0f) continue;
			const __m256 pj = _mm256_set1_ps(p[j]);
			const long o = voff[j] + e;
			a0 = _mm256_fmadd_ps(pj, load_k8(v, o, f16), a0);
			a1 = _mm256_fmadd_ps(pj, load_k8(v, o + 8, f16), a1);
			a2 = _mm256_fmadd_ps(pj, load_k8(v, o + 16, f16), a2);
			a3 = _mm256_fmadd_ps(pj, load_k8(v, o + 24, f16), a3);
		}
		_mm256_storeu_ps(acc + e, a0);
		_mm256_storeu_ps(acc + e + 8, a1);
		_mm256_storeu_ps(acc + e + 16, a2);
		_mm256_storeu_ps(acc + e + 24, a3);
	}
	for (; e + 8 <= dv; e += 8) {
		__m256 a0 = _mm256_loadu_ps(acc + e);
		for (int j = 0; j < nb; j++) {
			if (p[j] == 0.0f) continue;
			a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), load_k8(v, voff[j] + e, f16), a0);
		}
		_mm256_storeu_ps(acc + e, a0);
	}
	for (; e < dv; e++) {
		float a = acc[e];
		for (int j = 0; j < nb; j++) {
			if (p[j] == 0.0f) continue;
			a += p[j] * scalar_k(v, voff[j] + e, f16);
		}
		acc[e] = a;
	}
}

static inline AVX2 void cvt_f16_row(float *dst, const uint16_t *src, long n) {
	long e = 0;
	for (; e + 8 <= n; e += 8) _mm256_storeu_ps(dst + e, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + e))));
	for (; e < n; e++) dst[e] = _cvtsh_ss(src[e]);
}

// mica_attn_rows computes attention for rows r0..r1-1, row r = query i =
// r/nhead, head h = r%nhead, with the streaming (online) softmax over blocks
// of ATTN_BLOCK keys; the same algorithm, step for step, as attentionRef in
// attention.go. Consecutive rows of one query that share a kv head (GQA)
// form a tile: each block of keys and values is then read once from memory
// for all the tile's heads. The arithmetic of a row does not depend on its
// tile, so any split of the rows gives the same bits. acc is caller
// scratch of (nhead/nkvhead)*dv floats; blk
// is scratch of ATTN_BLOCK*(d+dv) floats where a tile of several heads gets
// an F16 block of keys/values converted to F32 once (conversion is exact,
// so the results are the same bits as converting on the fly).
AVX2 void mica_attn_rows(const mica_attn_cfg *c, const float *q, const void *k, const void *v,
                         const int32_t *qpos, const int32_t *kpos, const float *mask, float *out,
                         float *acc, float *blk, long r0, long r1) {
	float *kblk = blk, *vblk = blk + ATTN_BLOCK * c->d;
	long voffb[ATTN_BLOCK];
	const long group = c->nhead / c->nkvhead;
	float p[ATTN_BLOCK], sb[group * ATTN_BLOCK];
	long voff[ATTN_BLOCK];
	unsigned char vis[ATTN_BLOCK];
	float M[group], S[group];
	const float *qrs[group];
	float scale = c->scale;
	if (c->softcap != 0.0f) scale /= c->softcap;
	for (long t0 = r0; t0 < r1;) {
		long t1 = (t0 / group + 1) * group;
		if (t1 > r1) t1 = r1;
		const long nt = t1 - t0;
		const long i = t0 / c->nhead, g = (t0 % c->nhead) / group;
		for (long t = 0; t < nt; t++) {
			const long h = (t0 + t) % c->nhead;
			const float *qr = q + i * c->q_row + h * c->q_head;
			qrs[t] = qr;
			M[t] = -INFINITY;
			S[t] = 0.0f;
		}
		memset(acc, 0, (size_t)(nt * c->dv) * sizeof(float));
		const int32_t qp = qpos ? qpos[i] : 0;
		const float *mr = mask ? mask + i * c->mask_row : NULL;
		for (long j0 = 0; j0 < c->nkv; j0 += ATTN_BLOCK) {
			const int nb = (int)(c->nkv - j0 < ATTN_BLOCK ? c->nkv - j0 : ATTN_BLOCK);
			int any = 0;
			for (int jj = 0; jj < nb; jj++) {
				const long j = j0 + jj;
				vis[jj] = 0;
				voff[jj] = j * c->v_row + g * c->v_head;
				if (kpos) {
					const int32_t kp = kpos[j];
					if (kp < 0) continue;
					if (c->causal && kp > qp) continue;
					if (c->window > 0 && (long)qp - (long)kp >= c->window) continue;
				}
				if (mr && mr[j] == -INFINITY) continue;
				vis[jj] = 1;
				any = 1;
			}
			if (!any) continue;
			// where the block is shared by several heads, convert F16 once
			const int kconv = c->kf16 && nt > 1, vconv = c->vf16 && nt > 1;
			const void *kb = kconv ? (const void *)kblk : k;
			const void *vb = vconv ? (const void *)vblk : v;
			for (int jj = 0; jj < nb; jj++) {
				// every key of the block is converted (the dots run over all
				// of them and the invisible ones are discarded)
				if (kconv) cvt_f16_row(kblk + jj * c->d, (const uint16_t *)k + (j0 + jj) * c->k_row + g * c->k_head, c->d);
				if (vconv && vis[jj]) cvt_f16_row(vblk + jj * c->dv, (const uint16_t *)v + voff[jj], c->dv);
				voffb[jj] = vconv ? jj * c->dv : voff[jj];
			}
			const long kbase = kconv ? 0 : j0 * c->k_row + g * c->k_head;
			const long kstride = kconv ? c->d : c->k_row;
			const int kh = c->kf16 && !kconv;
			for (long t = 0; t < nt; t += 2) {
				if (t + 1 < nt)
					dot_keys2(qrs[t], qrs[t + 1], kb, kbase, kstride, c->d, kh, nb, sb + t * ATTN_BLOCK, sb + (t + 1) * ATTN_BLOCK);
				else
					dot_keys(qrs[t], kb, kbase, kstride, c->d, kh, nb, sb + t * ATTN_BLOCK);
			}
			for (long t = 0; t < nt; t++) {
				float *at = acc + t * c->dv;
				float *s = sb + t * ATTN_BLOCK;
				for (int jj = 0; jj < nb; jj++) s[jj] = vis[jj] ? s[jj] * scale : -INFINITY;
				if (c->softcap != 0.0f) {
					for (int jj = 0; jj < nb; jj += 8) {
						int m = nb - jj < 8 ? nb - jj : 8;
						__m256 th = v_tanh(load_partial(s + jj, m));
						th = _mm256_mul_ps(th, _mm256_set1_ps(c->softcap));
						float tmp[8];
						_mm256_storeu_ps(tmp, th);
						for (int z = 0; z < m; z++)
							if (s[jj + z] != -INFINITY) s[jj + z] = tmp[z];
					}
				}
				float bmax = -INFINITY;
				for (int jj = 0; jj < nb; jj++) {
					if (s[jj] != -INFINITY && mr) s[jj] += mr[j0 + jj];
					if (s[jj] > bmax) bmax = s[jj];
				}
				if (bmax == -INFINITY) continue;
				if (bmax > M[t]) {
					if (M[t] != -INFINITY) {
						float tmpin[8] = {M[t] - bmax}, tmpout[8];
						_mm256_storeu_ps(tmpout, v_exp(_mm256_loadu_ps(tmpin)));
						const float ms = tmpout[0];
						S[t] *= ms;
						const __m256 vms = _mm256_set1_ps(ms);
						long e = 0;
						for (; e + 8 <= c->dv; e += 8) _mm256_storeu_ps(at + e, _mm256_mul_ps(_mm256_loadu_ps(at + e), vms));
						for (; e < c->dv; e++) at[e] *= ms;
					}
					M[t] = bmax;
				}
				const __m256 vm = _mm256_set1_ps(M[t]);
				for (int jj = 0; jj < nb; jj += 8) {
					int m = nb - jj < 8 ? nb - jj : 8;
					store_partial(p + jj, v_exp(_mm256_sub_ps(load_partial(s + jj, m), vm)), m);
				}
				for (int jj = 0; jj < nb; jj++) S[t] += p[jj];
				mad_block(at, p, vb, voffb, nb, c->dv, c->vf16 && !vconv);
			}
		}
		for (long t = 0; t < nt; t++) {
			const long h = (t0 + t) % c->nhead;
			float *o = out + i * c->o_row + h * c->o_head;
			const float inv = S[t] == 0.0f ? 0.0f : 1.0f / S[t];
			for (long e = 0; e < c->dv; e++) o[e] = acc[t * c->dv + e] * inv;
		}
		t0 = t1;
	}
}

// ---------------------------------------------------------------------------
// F32 → F16 (round to nearest even, as vcvtps2ph; the quant package's
// conversion), n values

AVX2 void mica_to_f16(const float *x, uint16_t *y, long n) {
	long i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

// ---------------------------------------------------------------------------
// F16-table activations (ggml's GELU and quick GELU)

// mica_f16_table: y = F16→F32(table[F32→F16(x)]) (round to nearest even),
// times g when g != NULL. With clamp (GELU), x <= -10 gives 0 and x >= 10
// gives x (times g), as ggml.
AVX2 void mica_f16_table(const float *x, const float *g, float *y, long n, const uint16_t *table, int clamp) {
	const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
	long i = 0;
	for (; i < n; i += 8) {
		const int m = n - i < 8 ? (int)(n - i) : 8;
		const __m256 xv = m == 8 ? _mm256_loadu_ps(x + i) : load_partial(x + i, m);
		uint16_t hs[8], ts[8];
		_mm_storeu_si128((__m128i *)hs, _mm256_cvtps_ph(xv, _MM_FROUND_TO_NEAREST_INT));
		for (int z = 0; z < 8; z++) ts[z] = table[hs[z]];
		__m256 r = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)ts));
		__m256 xr = xv;
		if (g) {
			const __m256 gv = m == 8 ? _mm256_loadu_ps(g + i) : load_partial(g + i, m);
			r = _mm256_mul_ps(r, gv);
			xr = _mm256_mul_ps(xv, gv);
		}
		if (clamp) {
			r = _mm256_blendv_ps(r, xr, _mm256_cmp_ps(xv, hi, _CMP_GE_OQ));
			r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(xv, lo, _CMP_LE_OQ));
		}
		if (m == 8) _mm256_storeu_ps(y + i, r);
		else store_partial(y + i, r, m);
	}
}

// ---------------------------------------------------------------------------
// elementwise add and multiply

// mica_binary: y[i] = a[i] + b[i % nb] (mul: a[i] * b[i % nb]) for i < n,
// where nb is n (same shape) or the row length (b one row, broadcast over
// the rows of a; n a multiple of nb). One IEEE operation per element, so
// the results equal the Go loops' bit for bit.
AVX2 void mica_binary(const float *a, const float *b, float *y, long n, long nb, int mul) {
	for (long r = 0; r < n; r += nb) {
		const float *ar = a + r;
		float *yr = y + r;
		long i = 0;
		if (mul) {
			for (; i + 8 <= nb; i += 8)
				_mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(ar + i), _mm256_loadu_ps(b + i)));
			for (; i < nb; i++)
				yr[i] = ar[i] * b[i];
		} else {
			for (; i + 8 <= nb; i += 8)
				_mm256_storeu_ps(yr + i, _mm256_add_ps(_mm256_loadu_ps(ar + i), _mm256_loadu_ps(b + i)));
			for (; i < nb; i++)
				yr[i] = ar[i] + b[i];
		}
	}
}

// ---------------------------------------------------------------------------
// RoPE (NeoX pairs)

// mica_rope_neox rotates rows [r0, r1) of x in place: row r (stride ld
// floats) uses the (cos, sin) pairs at cs + (r / per)·2h (h pairs: one
// token's table, per rows a token) and sets a[i] = x0·c − x1·s, b[i] =
// x0·s + x1·c, a being the row's first h values and b the next h. Products
// are rounded before the add/sub, as rotate in rope.go (and ggml's
// rotate_pairs).
AVX2 void mica_rope_neox(float *x, const float *cs, long r0, long r1, long ld, long per, long h) {
	for (long r = r0; r < r1; r++) {
		float *a = x + r * ld, *b = a + h;
		const float *c = cs + (r / per) * 2 * h;
		long i = 0;
		for (; i + 8 <= h; i += 8) {
			// (c0 s0 c1 s1 c2 s2 c3 s3 | c4 s4 … c7 s7) → c and s in order
			const __m256 p0 = _mm256_loadu_ps(c + 2 * i), p1 = _mm256_loadu_ps(c + 2 * i + 8);
			const __m256 lo = _mm256_permute2f128_ps(p0, p1, 0x20), hi = _mm256_permute2f128_ps(p0, p1, 0x31);
			const __m256 cv = _mm256_shuffle_ps(lo, hi, 0x88), sv = _mm256_shuffle_ps(lo, hi, 0xdd);
			const __m256 x0 = _mm256_loadu_ps(a + i), x1 = _mm256_loadu_ps(b + i);
			_mm256_storeu_ps(a + i, _mm256_sub_ps(_mm256_mul_ps(x0, cv), _mm256_mul_ps(x1, sv)));
			_mm256_storeu_ps(b + i, _mm256_add_ps(_mm256_mul_ps(x0, sv), _mm256_mul_ps(x1, cv)));
		}
		for (; i < h; i++) {
			const float cc = c[2 * i], ss = c[2 * i + 1], x0 = a[i], x1 = b[i];
			const float p = x0 * cc, q = x1 * ss, u = x0 * ss, v = x1 * cc;
			a[i] = p - q;
			b[i] = u + v;
		}
	}
}
