//go:build cgo && amd64

// AVX2+FMA+F16C kernels of NumericsGGMLNoFlash (see attention_ggml.go):
// the 16-lane dot products of the scores (several query rows per pass over
// K), the softmax of a row (scale, mask, maximum, exponentials,
// normalisation), the 16-lane sums of the output over the cache cells and
// the F16 rounding of q. Each performs exactly the operations of its
// plain-Go twin (nfScoresRef, nfScale and maxAt, nfSoftmaxExpRef,
// nfNormalizeRef, nfOutputRef): one fused multiply-add per element and
// lane, in the same order, and the same reduction tree, so the results
// agree bit for bit.

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

#define NF_AI __attribute__((always_inline))

// nf_fin16 finishes a cell's score from its lane halves: the reduction,
// then the elements past the last multiple of 16, in order.
static inline NF_AI NF_AVX2 float nf_fin16(__m256 lo, __m256 hi, const float *q, const void *k, int kf16, long d,
		long main, long off) {
	float r = nf_reduce16(lo, hi);
	for (long e = main; e < d; e++) {
		r = fmaf(nf_scalar(k, kf16, off + e), q[e], r);
	}
	return r;
}

// nf_sc_tile: the scores of M query rows (q + m·d) against C cells (K
// rows at element offsets o[c], cell numbers cell[c]) into s[m·ss +
// cell[c]]: per row and cell two 8-lane accumulators (lanes 0-7 and 8-15
// of the 16), each K vector converted once for the M rows; per lane the
// same fused multiply-adds, in the same order, as nfScoresRef. M, C and
// KF16 are constants after inlining.
static inline NF_AI NF_AVX2 void nf_sc_tile(const int M, const int C, const int KF16, const float *q, long d,
		long main, const void *k, const long *o, const int32_t *cell, float *s, long ss) {
	__m256 lo[6][2], hi[6][2];
	_Pragma("GCC unroll 6") for (int m = 0; m < M; m++) {
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			lo[m][c] = _mm256_setzero_ps();
			hi[m][c] = _mm256_setzero_ps();
		}
	}
	for (long e = 0; e < main; e += 16) {
		__m256 kl[2], kh[2];
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			kl[c] = nf_load(k, KF16, o[c] + e);
			kh[c] = nf_load(k, KF16, o[c] + e + 8);
		}
		_Pragma("GCC unroll 6") for (int m = 0; m < M; m++) {
			const __m256 qa = _mm256_loadu_ps(q + m * d + e), qb = _mm256_loadu_ps(q + m * d + e + 8);
			_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
				lo[m][c] = _mm256_fmadd_ps(kl[c], qa, lo[m][c]);
				hi[m][c] = _mm256_fmadd_ps(kh[c], qb, hi[m][c]);
			}
		}
	}
	_Pragma("GCC unroll 6") for (int m = 0; m < M; m++) {
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			s[m * ss + cell[c]] = nf_fin16(lo[m][c], hi[m][c], q + m * d, k, KF16, d, main, o[c]);
		}
	}
}

// nf_sc_rows runs nf_sc_tile over all n cells for M rows: C cells at a
// time, then one at a time.
static inline NF_AI NF_AVX2 void nf_sc_rows(const int M, const int C, const int KF16, const float *q, long d,
		const void *k, long krow, const int32_t *cells, long n, float *s, long ss) {
	const long main = d & ~15L;
	long o[2];
	long i = 0;
	for (; i + C <= n; i += C) {
		_Pragma("GCC unroll 2") for (int c = 0; c < C; c++) {
			o[c] = cells[i + c] * krow;
		}
		nf_sc_tile(M, C, KF16, q, d, main, k, o, cells + i, s, ss);
	}
	for (; i < n; i++) {
		o[0] = cells[i] * krow;
		nf_sc_tile(M, 1, KF16, q, d, main, k, o, cells + i, s, ss);
	}
}

// nf_scores_blk_t: tiles of at most 6 rows, of similar sizes; one cell at
// a time (up to 12 accumulators), two for tiles of 1 or 2 rows.
static inline NF_AI NF_AVX2 void nf_scores_blk_t(const int KF16, const float *q, long R, long d, const void *k,
		long krow, const int32_t *cells, long n, float *s, long ss) {
	for (long r = 0; r < R;) {
		const long left = R - r, tiles = (left + 5) / 6, m = (left + tiles - 1) / tiles;
		const float *qr = q + r * d;
		float *sr = s + r * ss;
		switch (m) {
		case 6: nf_sc_rows(6, 1, KF16, qr, d, k, krow, cells, n, sr, ss); break;
		case 5: nf_sc_rows(5, 1, KF16, qr, d, k, krow, cells, n, sr, ss); break;
		case 4: nf_sc_rows(4, 1, KF16, qr, d, k, krow, cells, n, sr, ss); break;
		case 3: nf_sc_rows(3, 1, KF16, qr, d, k, krow, cells, n, sr, ss); break;
		case 2: nf_sc_rows(2, 2, KF16, qr, d, k, krow, cells, n, sr, ss); break;
		default: nf_sc_rows(1, 2, KF16, qr, d, k, krow, cells, n, sr, ss); break;
		}
		r += m;
	}
}

// mica_nf_scores_blk: s[r·ss + cells[i]] = dot16(q row r, K row cells[i])
// for r < R and i < n (nfScoresRef for each row); q's rows are d apart, k
// points at the head's first element, its rows krow elements apart. The
// rows share each K vector's load and conversion.
NF_AVX2 void mica_nf_scores_blk(const float *q, long R, long d, const void *k, int kf16, long krow,
		const int32_t *cells, long n, float *s, long ss) {
	if (kf16) {
		nf_scores_blk_t(1, q, R, d, k, krow, cells, n, s, ss);
	} else {
		nf_scores_blk_t(0, q, R, d, k, krow, cells, n, s, ss);
	}
}

// nf_out_run adds K·16 consecutive cells j … j+16K−1 (j a multiple of 16)
// to the lane sums of G rows (weights w + h·ws, sums acc + h·16·dv): per
// lane l, its K cells j+l, j+16+l, … in order, the lane's sums loaded and
// stored once per 8 elements, each V vector converted once for the G rows
// (the same fused multiply-adds, in the same order, as one cell and one
// row at a time). G, K and VF16 are constants after inlining, so the
// loop has no branch on V's type; converting V from F16 (one vcvtph2ps
// per 8 products) is what bounds a single row, and sharing it between
// rows is what makes this faster. The G·K weights stay in registers (12
// at most: K ≤ 4 for 3 rows).
static inline __attribute__((always_inline)) NF_AVX2 void nf_out_run(const int G, const int K, const int VF16,
		const float *w, long ws, const void *v, long dv, long vrow, long j, float *acc) {
	for (long l = 0; l < 16; l++) {
		float *a = acc + l * dv;
		__m256 wk[3][6];
		long o[6];
		_Pragma("GCC unroll 6") for (int m = 0; m < K; m++) {
			o[m] = (j + l + 16 * m) * vrow;
			_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
				wk[h][m] = _mm256_set1_ps(w[h * ws + j + l + 16 * m]);
			}
		}
		for (long e = 0; e < dv; e += 8) {
			__m256 t[3];
			_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
				t[h] = _mm256_loadu_ps(a + h * 16 * dv + e);
			}
			_Pragma("GCC unroll 6") for (int m = 0; m < K; m++) {
				const __m256 x = nf_load(v, VF16, o[m] + e);
				_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
					t[h] = _mm256_fmadd_ps(x, wk[h][m], t[h]);
				}
			}
			_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
				_mm256_storeu_ps(a + h * 16 * dv + e, t[h]);
			}
		}
	}
}

// nf_output_gt is mica_nf_output_g for G rows and V's type VF16 (both
// constants after inlining).
static inline __attribute__((always_inline)) NF_AVX2 void nf_output_gt(const int G, const int VF16, const float *w,
		long ws, const void *v, long dv, long vrow, const int32_t *idx, long n, float *acc, float *out, const long *ooff) {
	memset(acc, 0, sizeof(float) * 16 * dv * G);
	long main = dv & ~7L;
	for (long i = 0; i < n; i++) {
		long j = idx[i];
		if ((j & 15) == 0 && dv == main && i + 32 <= n && idx[i + 31] == j + 31) {
			// runs of 96 (not for 3 rows), 64, 48 or 32 consecutive cells
			// (idx is increasing)
			if (G < 3 && i + 96 <= n && idx[i + 95] == j + 95) {
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
		// one cell: each V vector converted once for the G rows
		const long off = j * vrow;
		float *a[3];
		float wj[3];
		__m256 wb[3];
		_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
			a[h] = acc + h * 16 * dv + (j & 15) * dv;
			wj[h] = w[h * ws + j];
			wb[h] = _mm256_set1_ps(wj[h]);
		}
		long e = 0;
		for (; e < main; e += 8) {
			const __m256 x = nf_load(v, VF16, off + e);
			_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
				_mm256_storeu_ps(a[h] + e, _mm256_fmadd_ps(x, wb[h], _mm256_loadu_ps(a[h] + e)));
			}
		}
		for (; e < dv; e++) {
			const float x = nf_scalar(v, VF16, off + e);
			_Pragma("GCC unroll 3") for (int h = 0; h < G; h++) {
				a[h][e] = fmaf(x, wj[h], a[h][e]);
			}
		}
	}
	for (int h = 0; h < G; h++) {
		const float *ah = acc + h * 16 * dv;
		float *oh = out + ooff[h];
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

// mica_nf_output_g: for each of G rows (G is 1, 2 or 3), out[ooff[h] + e]
// = the 16-lane sum over cells idx[0..n) (in increasing order) of
// v[cell][e]·w[h·ws + cell], lane = cell mod 16, reduced like
// _mm512_reduce_add_ps. acc holds G·16·dv floats of scratch. The rows
// share V, so each V vector is loaded and converted once for all of them.
NF_AVX2 void mica_nf_output_g(const float *w, long ws, int G, const void *v, int vf16, long dv, long vrow,
		const int32_t *idx, long n, float *acc, float *out, const long *ooff) {
	if (vf16) {
		switch (G) {
		case 3: nf_output_gt(3, 1, w, ws, v, dv, vrow, idx, n, acc, out, ooff); break;
		case 2: nf_output_gt(2, 1, w, ws, v, dv, vrow, idx, n, acc, out, ooff); break;
		default: nf_output_gt(1, 1, w, ws, v, dv, vrow, idx, n, acc, out, ooff); break;
		}
	} else {
		switch (G) {
		case 3: nf_output_gt(3, 0, w, ws, v, dv, vrow, idx, n, acc, out, ooff); break;
		case 2: nf_output_gt(2, 0, w, ws, v, dv, vrow, idx, n, acc, out, ooff); break;
		default: nf_output_gt(1, 0, w, ws, v, dv, vrow, idx, n, acc, out, ooff); break;
		}
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
	const __m256i ni = _mm256_cvtps_epi32(n);
	// -125 ≤ n ≤ 127 in every lane (j is in [0.7, 1.5)): j·2^n is a normal
	// float, exact, so adding n to j's exponent is the rounded product
	const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-125.0f), _CMP_GE_OQ),
		_mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
	if (_mm256_movemask_ps(ok) == 0xff) {
		return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(j), _mm256_slli_epi32(ni, 23)));
	}
	// 2^n as doubles (|n| ≤ 192 here; other lanes are replaced below)
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

// mica_nf_softmax_row turns one row of raw scores into weights, over the
// cells [lo, hi) (lo a multiple of 16): the visible cells idx[0..n)
// (increasing, in [lo, hi)) get w·scale (+ mr[j] when mr is set), the
// others -Inf (nfScale, with the row's other cells -Inf). It returns their
// maximum. When that is 0 or a value is NaN (where the order of the fold
// matters: Go's max decides) *redo is set and nothing more is done; when
// it is -Inf (no visible cell) neither. Otherwise the exponentials, their
// sum and the normalisation follow (mica_nf_softmax_exp and
// mica_nf_normalize on [lo, hi)).
NF_AVX2 float mica_nf_softmax_row(float *w, long lo, long hi, const int32_t *idx, long n, float scale,
		const float *mr, int f16v, int *redo) {
	const __m256 vs = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
	__m256 vm = ninf, vnan = _mm256_setzero_ps();
	float m = -INFINITY;
	int nan = 0;
	long j = lo, k = 0;
	while (k < n) {
		// a run of consecutive visible cells a … a+len−1
		const long a = idx[k];
		long len = 1;
		if (idx[n - 1] - a == n - 1 - k) { // the rest is one run
			len = n - k;
		}
		while (k + len < n && idx[k + len] == a + len) {
			len++;
		}
		for (; j < a; j++) {
			w[j] = -INFINITY;
		}
		const long b = a + len;
		for (; j + 8 <= b; j += 8) {
			__m256 x = _mm256_mul_ps(_mm256_loadu_ps(w + j), vs);
			if (mr) {
				x = _mm256_add_ps(x, _mm256_loadu_ps(mr + j));
			}
			_mm256_storeu_ps(w + j, x);
			vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
			vm = _mm256_max_ps(vm, x);
		}
		for (; j < b; j++) {
			float x = w[j] * scale;
			if (mr) {
				x = x + mr[j];
			}
			w[j] = x;
			nan |= x != x;
			m = x > m ? x : m;
		}
		k += len;
	}
	for (; j < hi; j++) {
		w[j] = -INFINITY;
	}
	float t[8];
	_mm256_storeu_ps(t, vm);
	for (int l = 0; l < 8; l++) {
		m = t[l] > m ? t[l] : m;
	}
	if (nan || _mm256_movemask_ps(vnan) || m == 0) {
		*redo = 1;
		return m;
	}
	*redo = 0;
	if (m == -INFINITY) {
		return m;
	}
	const double sum = mica_nf_softmax_exp(w + lo, hi - lo, m);
	mica_nf_normalize(w + lo, hi - lo, (float)(1 / sum), f16v);
	return m;
}
