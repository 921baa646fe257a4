//go:build cgo && amd64

// AVX2+FMA+F16C kernels of NumericsGGMLNoFlash (see attention_ggml.go):
// the 16-lane dot products of the scores, the 16-lane sums of the output
// over the cache cells, the exponentials, the weights' normalisation and
// the F16 rounding of q. Each performs exactly the operations of its
// plain-Go twin (nfScoresRef, nfOutputRef): one fused multiply-add per
// element and lane, in the same order, and the same reduction tree, so the
// results agree bit for bit.

#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define NF_AVX2 __attribute__((target("avx2,fma,f16c")))

static inline __attribute__((always_inline)) NF_AVX2 __m256 nf_load(const void *p, int f16, long i) {
	if (f16) {
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
	}
	return _mm256_loadu_ps((const float *)p + i);
}

static inline __attribute__((always_inline)) NF_AVX2 float nf_scalar(const void *p, int f16, long i) {
	if (f16) {
		return _cvtsh_ss(((const uint16_t *)p)[i]);
	}
	return ((const float *)p)[i];
}

// nf_reduce16 is _mm512_reduce_add_ps on lanes lo (0-7) and hi (8-15):
// lanes l+8 onto l, l+4 onto l, then (l0+l2)+(l1+l3).
static inline NF_AVX2 float nf_reduce16(__m256 lo, __m256 hi) {
	__m256 t8 = _mm256_add_ps(lo, hi);
	__m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
	float t[4];
	_mm_storeu_ps(t, t4);
	return (t[0] + t[2]) + (t[1] + t[3]);
}

// nf_dot16 is one cell's score: two 8-lane halves of the 16 lanes, one
// fused multiply-add per element, then the reduction and the leftovers.
static inline NF_AVX2 float nf_dot16(const float *q, const void *k, int kf16, long d, long main, long off) {
	__m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
	for (long e = 0; e < main; e += 16) {
		lo = _mm256_fmadd_ps(nf_load(k, kf16, off + e), _mm256_loadu_ps(q + e), lo);
		hi = _mm256_fmadd_ps(nf_load(k, kf16, off + e + 8), _mm256_loadu_ps(q + e + 8), hi);
	}
	float r = nf_reduce16(lo, hi);
	for (long e = main; e < d; e++) {
		r = fmaf(nf_scalar(k, kf16, off + e), q[e], r);
	}
	return r;
}

// nf_fin16 finishes a cell's score from its lane halves (see nf_dot16).
static inline NF_AVX2 float nf_fin16(__m256 lo, __m256 hi, const float *q, const void *k, int kf16, long d,
		long main, long off) {
	float r = nf_reduce16(lo, hi);
	for (long e = main; e < d; e++) {
		r = fmaf(nf_scalar(k, kf16, off + e), q[e], r);
	}
	return r;
}

// mica_nf_scores: s[idx[i]] = dot16(q, row idx[i] of k) for i < n; k
// points at the head's first element, rows krow elements apart. Four cells
// at a time, each with its own accumulators (the same operations per cell
// as one at a time; the four chains only hide the FMA latency).
NF_AVX2 void mica_nf_scores(const float *q, const void *k, int kf16, long d, long krow,
		const int32_t *idx, long n, float *s) {
	long main = d & ~15L;
	long i = 0;
	for (; i + 4 <= n; i += 4) {
		long o0 = idx[i] * krow, o1 = idx[i + 1] * krow, o2 = idx[i + 2] * krow, o3 = idx[i + 3] * krow;
		__m256 l0 = _mm256_setzero_ps(), h0 = l0, l1 = l0, h1 = l0, l2 = l0, h2 = l0, l3 = l0, h3 = l0;
		for (long e = 0; e < main; e += 16) {
			__m256 qa = _mm256_loadu_ps(q + e), qb = _mm256_loadu_ps(q + e + 8);
			l0 = _mm256_fmadd_ps(nf_load(k, kf16, o0 + e), qa, l0);
			h0 = _mm256_fmadd_ps(nf_load(k, kf16, o0 + e + 8), qb, h0);
			l1 = _mm256_fmadd_ps(nf_load(k, kf16, o1 + e), qa, l1);
			h1 = _mm256_fmadd_ps(nf_load(k, kf16, o1 + e + 8), qb, h1);
			l2 = _mm256_fmadd_ps(nf_load(k, kf16, o2 + e), qa, l2);
			h2 = _mm256_fmadd_ps(nf_load(k, kf16, o2 + e + 8), qb, h2);
			l3 = _mm256_fmadd_ps(nf_load(k, kf16, o3 + e), qa, l3);
			h3 = _mm256_fmadd_ps(nf_load(k, kf16, o3 + e + 8), qb, h3);
		}
		s[idx[i]] = nf_fin16(l0, h0, q, k, kf16, d, main, o0);
		s[idx[i + 1]] = nf_fin16(l1, h1, q, k, kf16, d, main, o1);
		s[idx[i + 2]] = nf_fin16(l2, h2, q, k, kf16, d, main, o2);
		s[idx[i + 3]] = nf_fin16(l3, h3, q, k, kf16, d, main, o3);
	}
	for (; i < n; i++) {
		s[idx[i]] = nf_dot16(q, k, kf16, d, main, idx[i] * krow);
	}
}

// nf_scores_gq: the scores of G queries (q + g·qs) against cell rows o[c]
// (C cells), one accumulator pair per query and cell: each K vector is
// loaded once for the G queries, and every score gets exactly nf_dot16's
// operations. G and C are constants after inlining.
static inline __attribute__((always_inline)) NF_AVX2 void nf_scores_gq(const int G, const int C, const float *q,
		long qs, const void *k, int kf16, long d, long main, const long *o, const int32_t *cell, float *s, long ss) {
	__m256 lo[4][2], hi[4][2];
	_Pragma("GCC unroll 4") for (int g = 0; g < G; g++) {
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			lo[g][c] = _mm256_setzero_ps();
			hi[g][c] = _mm256_setzero_ps();
		}
	}
	for (long e = 0; e < main; e += 16) {
		__m256 kl[2], kh[2];
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			kl[c] = nf_load(k, kf16, o[c] + e);
			kh[c] = nf_load(k, kf16, o[c] + e + 8);
		}
		_Pragma("GCC unroll 4") for (int g = 0; g < G; g++) {
			const __m256 qa = _mm256_loadu_ps(q + g * qs + e), qb = _mm256_loadu_ps(q + g * qs + e + 8);
			_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
				lo[g][c] = _mm256_fmadd_ps(kl[c], qa, lo[g][c]);
				hi[g][c] = _mm256_fmadd_ps(kh[c], qb, hi[g][c]);
			}
		}
	}
	_Pragma("GCC unroll 4") for (int g = 0; g < G; g++) {
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			s[g * ss + cell[c]] = nf_fin16(lo[g][c], hi[g][c], q + g * qs, k, kf16, d, main, o[c]);
		}
	}
}

// mica_nf_scores_g is mica_nf_scores for G queries (2 ≤ G ≤ 4, rows q +
// g·qs) that see the same cells: s[g·ss + idx[i]]. The heads of a
// grouped-query attention group share K, so each K row is read once for
// all of them; every score equals mica_nf_scores' bit for bit.
NF_AVX2 void mica_nf_scores_g(const float *q, long qs, int G, const void *k, int kf16, long d, long krow,
		const int32_t *idx, long n, float *s, long ss) {
	long main = d & ~15L;
	long i = 0;
	long o[2];
	if (G == 2) {
		for (; i + 2 <= n; i += 2) {
			o[0] = idx[i] * krow;
			o[1] = idx[i + 1] * krow;
			nf_scores_gq(2, 2, q, qs, k, kf16, d, main, o, idx + i, s, ss);
		}
	}
	for (; i < n; i++) {
		o[0] = idx[i] * krow;
		switch (G) {
		case 2: nf_scores_gq(2, 1, q, qs, k, kf16, d, main, o, idx + i, s, ss); break;
		case 3: nf_scores_gq(3, 1, q, qs, k, kf16, d, main, o, idx + i, s, ss); break;
		default: nf_scores_gq(4, 1, q, qs, k, kf16, d, main, o, idx + i, s, ss); break;
		}
	}
}

// nf_out_run adds K·16 consecutive cells j … j+16K−1 (j a multiple of 16)
// to the lane sums of G heads (weights w + h·ws, sums acc + h·16·dv): per
// lane l, its K cells j+l, j+16+l, … in order, the lane's sums loaded and
// stored once per 8 elements, each V vector converted once for the G heads
// (the same fused multiply-adds, in the same order, as one cell and one
// head at a time). G, K and VF16 are constants after inlining, so the
// loop has no branch on V's type; converting V from F16 (one vcvtph2ps
// per 8 products) is what bounds a single head, and sharing it between
// two heads is what makes this faster.
static inline __attribute__((always_inline)) NF_AVX2 void nf_out_run(const int G, const int K, const int VF16,
		const float *w, long ws, const void *v, long dv, long vrow, long j, float *acc) {
	for (long l = 0; l < 16; l++) {
		float *a = acc + l * dv;
		__m256 wk[2][6];
		long o[6];
		_Pragma("GCC unroll 6") for (int m = 0; m < K; m++) {
			o[m] = (j + l + 16 * m) * vrow;
			_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
				wk[h][m] = _mm256_set1_ps(w[h * ws + j + l + 16 * m]);
			}
		}
		for (long e = 0; e < dv; e += 8) {
			__m256 t[2];
			_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
				t[h] = _mm256_loadu_ps(a + h * 16 * dv + e);
			}
			_Pragma("GCC unroll 6") for (int m = 0; m < K; m++) {
				const __m256 x = nf_load(v, VF16, o[m] + e);
				_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
					t[h] = _mm256_fmadd_ps(x, wk[h][m], t[h]);
				}
			}
			_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
				_mm256_storeu_ps(a + h * 16 * dv + e, t[h]);
			}
		}
	}
}

// nf_output_gt is mica_nf_output_g for G heads and V's type VF16 (both
// constants after inlining).
static inline __attribute__((always_inline)) NF_AVX2 void nf_output_gt(const int G, const int VF16, const float *w,
		long ws, const void *v, long dv, long vrow, const int32_t *idx, long n, float *acc, float *out, long os) {
	memset(acc, 0, sizeof(float) * 16 * dv * G);
	long main = dv & ~7L;
	for (long i = 0; i < n; i++) {
		long j = idx[i];
		if ((j & 15) == 0 && dv == main && i + 32 <= n && idx[i + 31] == j + 31) {
			// runs of 96, 64, 48 or 32 consecutive cells (idx is increasing)
			if (i + 96 <= n && idx[i + 95] == j + 95) {
				nf_out_run(G, 6, VF16, w, ws, v, dv, vrow, j, acc);
				i += 95;
			} else if (i + 64 <= n && idx[i + 63] == j + 63) {
				nf_out_run(G, 4, VF16, w, ws, v, dv, vrow, j, acc);
				i += 63;
			} else if (i + 48 <= n && idx[i + 47] == j + 47) {
				nf_out_run(G, 3, VF16, w, ws, v, dv, vrow, j, acc);
				i += 47;
			} else {
				nf_out_run(G, 2, VF16, w, ws, v, dv, vrow, j, acc);
				i += 31;
			}
			continue;
		}
		// one cell: each V vector converted once for the G heads
		const long off = j * vrow;
		float *a[2];
		float wj[2];
		__m256 wb[2];
		_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
			a[h] = acc + h * 16 * dv + (j & 15) * dv;
			wj[h] = w[h * ws + j];
			wb[h] = _mm256_set1_ps(wj[h]);
		}
		long e = 0;
		for (; e < main; e += 8) {
			const __m256 x = nf_load(v, VF16, off + e);
			_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
				_mm256_storeu_ps(a[h] + e, _mm256_fmadd_ps(x, wb[h], _mm256_loadu_ps(a[h] + e)));
			}
		}
		for (; e < dv; e++) {
			const float x = nf_scalar(v, VF16, off + e);
			_Pragma("GCC unroll 2") for (int h = 0; h < G; h++) {
				a[h][e] = fmaf(x, wj[h], a[h][e]);
			}
		}
	}
	for (int h = 0; h < G; h++) {
		const float *ah = acc + h * 16 * dv;
		float *oh = out + h * os;
		long e = 0;
		for (; e < main; e += 8) {
			__m256 t[8];
			for (int l = 0; l < 8; l++) {
				t[l] = _mm256_add_ps(_mm256_loadu_ps(ah + l * dv + e), _mm256_loadu_ps(ah + (l + 8) * dv + e));
			}
			for (int l = 0; l < 4; l++) {
				t[l] = _mm256_add_ps(t[l], t[l + 4]);
			}
			_mm256_storeu_ps(oh + e, _mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3])));
		}
		for (; e < dv; e++) {
			float t[8];
			for (int l = 0; l < 8; l++) {
				t[l] = ah[l * dv + e] + ah[(l + 8) * dv + e];
			}
			for (int l = 0; l < 4; l++) {
				t[l] += t[l + 4];
			}
			oh[e] = (t[0] + t[2]) + (t[1] + t[3]);
		}
	}
}

// mica_nf_output_g: for each of G heads (G is 1 or 2), out[h·os + e] = the
// 16-lane sum over cells idx[0..n) (in increasing order) of
// v[cell][e]·w[h·ws + cell], lane = cell mod 16, reduced like
// _mm512_reduce_add_ps. acc holds G·16·dv floats of scratch. The heads of
// a grouped-query attention group share V, so each V vector is loaded and
// converted once for both.
NF_AVX2 void mica_nf_output_g(const float *w, long ws, int G, const void *v, int vf16, long dv, long vrow,
		const int32_t *idx, long n, float *acc, float *out, long os) {
	if (G == 2) {
		if (vf16) {
			nf_output_gt(2, 1, w, ws, v, dv, vrow, idx, n, acc, out, os);
		} else {
			nf_output_gt(2, 0, w, ws, v, dv, vrow, idx, n, acc, out, os);
		}
	} else if (vf16) {
		nf_output_gt(1, 1, w, ws, v, dv, vrow, idx, n, acc, out, os);
	} else {
		nf_output_gt(1, 0, w, ws, v, dv, vrow, idx, n, acc, out, os);
	}
}

// nf_exp is expGGML (ggml's AVX-512 ggml_v_expf for one lane), with the
// same roundings: vscalefps's j·2^n rounded once is computed exactly in
// double and rounded to float.
static inline NF_AVX2 float nf_exp(float x) {
	const float r = 0x1.8p23f;
	float z = fmaf(x, 0x1.715476p+0f, r);
	float n = z - r;
	float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
	if (n > 192 || n < -192) {
		return n <= 0 ? 0.0f : INFINITY;
	}
	float u = b * b;
	float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
		fmaf(0x1.ffffecp-1f, b, 1.0f));
	union { uint64_t u; double d; } p2;
	p2.u = (uint64_t)((int64_t)n + 1023) << 52;
	return (float)((double)j * p2.d);
}

// mica_nf_softmax_exp replaces w[j] (j < n; -Inf for masked cells) by
// e^(w[j]-mx) (0 for masked cells) and returns their sum: per group of 16
// cells from cell 0, the group's values reduced like _mm512_reduce_add_ps,
// added to a double (ggml_vec_soft_max_f32 on AVX-512).
// nf_exp8 is nf_exp on 8 lanes, operation for operation (the scaling by
// 2^n in double, then one rounding to float, as there).
static inline NF_AVX2 __m256 nf_exp8(__m256 x) {
	const __m256 r = _mm256_set1_ps(0x1.8p23f);
	const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
	const __m256 n = _mm256_sub_ps(z, r);
	const __m256 nn = _mm256_sub_ps(_mm256_setzero_ps(), n);
	const __m256 b = _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.7f7d1cp-20f),
		_mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.62e4p-1f), x));
	const __m256 u = _mm256_mul_ps(b, b);
	const __m256 j = _mm256_fmadd_ps(
		_mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
			_mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
		u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
	// 2^n as doubles (|n| ≤ 192 here; other lanes are replaced below)
	const __m256i ni = _mm256_cvtps_epi32(n);
	const __m256i bias = _mm256_set1_epi64x(1023);
	const __m256d p0 = _mm256_castsi256_pd(
		_mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(ni)), bias), 52));
	const __m256d p1 = _mm256_castsi256_pd(
		_mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(ni, 1)), bias), 52));
	const __m128 r0 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(j)), p0));
	const __m128 r1 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(j, 1)), p1));
	__m256 out = _mm256_set_m128(r1, r0);
	const __m256 big = _mm256_or_ps(_mm256_cmp_ps(n, _mm256_set1_ps(192.0f), _CMP_GT_OQ),
		_mm256_cmp_ps(n, _mm256_set1_ps(-192.0f), _CMP_LT_OQ));
	const __m256 over = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ),
		_mm256_set1_ps(INFINITY)); // n ≤ 0: 0, else +Inf
	return _mm256_blendv_ps(out, over, big);
}

NF_AVX2 double mica_nf_softmax_exp(float *w, long n, float mx) {
	double sum = 0;
	long j0 = 0;
	const __m256 vmx = _mm256_set1_ps(mx), ninf = _mm256_set1_ps(-INFINITY);
	for (; j0 + 16 <= n; j0 += 16) {
		const __m256 x0 = _mm256_loadu_ps(w + j0), x1 = _mm256_loadu_ps(w + j0 + 8);
		// masked cells (-Inf) give 0
		const __m256 e0 = _mm256_andnot_ps(_mm256_cmp_ps(x0, ninf, _CMP_EQ_OQ), nf_exp8(_mm256_sub_ps(x0, vmx)));
		const __m256 e1 = _mm256_andnot_ps(_mm256_cmp_ps(x1, ninf, _CMP_EQ_OQ), nf_exp8(_mm256_sub_ps(x1, vmx)));
		_mm256_storeu_ps(w + j0, e0);
		_mm256_storeu_ps(w + j0 + 8, e1);
		sum += (double)nf_reduce16(e0, e1);
	}
	for (; j0 < n; j0 += 16) {
		float ex[16] = {0};
		for (long l = 0; l < 16 && j0 + l < n; l++) {
			float x = w[j0 + l];
			if (x != -INFINITY) {
				ex[l] = nf_exp(x - mx);
			}
			w[j0 + l] = ex[l];
		}
		sum += (double)nf_reduce16(_mm256_loadu_ps(ex), _mm256_loadu_ps(ex + 8));
	}
	return sum;
}

// mica_nf_normalize: for j < n with w[j] != 0, w[j] = w[j]*inv, rounded to
// F16 and back when f16 is set (F16C, round to nearest even: the values are
// finite, where this equals quant.FP32ToFP16). The same operations as
// nfNormalizeRef.
NF_AVX2 void mica_nf_normalize(float *w, long n, float inv, int f16) {
	long j = 0;
	// 8 cells at a time; zero weights are kept as they are (not multiplied:
	// 0·inv is NaN when inv is).
	const __m256 vinv = _mm256_set1_ps(inv);
	for (; j + 8 <= n; j += 8) {
		const __m256 x = _mm256_loadu_ps(w + j);
		__m256 e = _mm256_mul_ps(x, vinv);
		if (f16) {
			e = _mm256_cvtph_ps(_mm256_cvtps_ph(e, 0));
		}
		_mm256_storeu_ps(w + j, _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ)));
	}
	for (; j < n; j++) {
		float e = w[j];
		if (e != 0) {
			e = e * inv;
			if (f16) {
				e = _cvtsh_ss(_cvtss_sh(e, 0));
			}
			w[j] = e;
		}
	}
}

// mica_nf_round_f16: dst[e] = src[e] rounded to F16 (round to nearest even,
// vcvtps2ph mode 0, which quant.FP32ToFP16 reproduces, NaN included) and
// back, for e < n.
NF_AVX2 void mica_nf_round_f16(const float *src, float *dst, long n) {
	long e = 0;
	for (; e + 8 <= n; e += 8) {
		_mm256_storeu_ps(dst + e, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + e), 0)));
	}
	for (; e < n; e++) {
		dst[e] = _cvtsh_ss(_cvtss_sh(src[e], 0));
	}
}
