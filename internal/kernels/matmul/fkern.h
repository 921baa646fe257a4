// F32/F16/BF16 matrix kernels, written once and compiled per instruction
// set. The including file defines FK_ISA, FV (vector type), FW (lanes),
// the vector ops FV_*, the weight loader FLOADW(T, p) (FW weights widened
// to F32 exactly), the GEMM micro-kernel tile FK_MR × FK_NR and
// FK_KERNEL(kc, a, b, c, ldc, first).
//
// Matrix-vector (n = 1): each row's dot product uses four vector
// accumulators over 4·FW-wide steps, a one-vector step, then a scalar tail;
// the same sequence for every row.
//
// Small batches (n = 2..4): one weight row at a time against all n
// activation rows, two vector accumulators per output.
//
// GEMM (n > 4): BLIS-style. Weights are packed (widened) into FK_NR-row
// panels of FK_KC columns, activations into FK_MR-row panels; the
// micro-kernel keeps an FK_MR×FK_NR tile of Y in registers. Each Y element
// is one FMA chain over k = 0..cols-1 in order, stored and reloaded between
// FK_KC blocks (exact), so its value does not depend on the tile it is in or
// on the row range of the call. Edge tiles run the same kernel on a padded
// copy.

#define FCAT2(a, b) a##_##b
#define FCAT(a, b) FCAT2(a, b)
#define FFN(name) FCAT(name, FK_ISA)
#define FINLINE static inline __attribute__((always_inline))

enum { FT_F32 = 0, FT_F16 = 1, FT_BF16 = 30 };

FINLINE float FFN(load1)(int T, const uint8_t *p) {
	if (T == FT_F32) {
		float f;
		memcpy(&f, p, 4);
		return f;
	}
	uint16_t h;
	memcpy(&h, p, 2);
	if (T == FT_F16)
		return _cvtsh_ss(h);
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

FINLINE int FFN(esize)(int T) { return T == FT_F32 ? 4 : 2; }

// Dot products of RM consecutive weight rows with x.
FINLINE void FFN(dotrows)(int T, int RM, const uint8_t *w, size_t wrb, const float *x, int cols, float *out) {
	const int es = FFN(esize)(T);
	FV acc[4][4];
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		#pragma GCC unroll 8
		for (int u = 0; u < 4; u++)
			acc[i][u] = FV_ZERO();
	int k = 0;
	for (; k + 4 * FW <= cols; k += 4 * FW) {
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) // the same columns of the next rows
#pragma GCC unroll 8
			for (int off = 0; off < 4 * FW * es; off += 64)
				_mm_prefetch((const char *)(w + (i + RM) * wrb + (size_t)k * es + off), _MM_HINT_T0);
		#pragma GCC unroll 8
		for (int u = 0; u < 4; u++) {
			FV xv = FV_LOAD(x + k + u * FW);
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++)
				acc[i][u] = FV_FMA(FLOADW(T, w + i * wrb + (size_t)(k + u * FW) * es), xv, acc[i][u]);
		}
	}
	for (; k + FW <= cols; k += FW) {
		FV xv = FV_LOAD(x + k);
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
			acc[i][0] = FV_FMA(FLOADW(T, w + i * wrb + (size_t)k * es), xv, acc[i][0]);
	}
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++) {
		float t = 0;
		for (int kk = k; kk < cols; kk++)
			t = t + FFN(load1)(T, w + i * wrb + (size_t)kk * es) * x[kk];
		FV s = FV_ADD(FV_ADD(acc[i][0], acc[i][1]), FV_ADD(acc[i][2], acc[i][3]));
		out[i] = FV_HSUM(s) + t;
	}
}

#define FDOT_FN(RM)                                                                              \
	static __attribute__((noinline)) void FCAT(FFN(dot), RM)(int T, const uint8_t *w, size_t wrb, \
		const float *x, int cols, float *out) {                                                  \
		switch (T) {                                                                             \
		case FT_F32: FFN(dotrows)(FT_F32, RM, w, wrb, x, cols, out); break;                      \
		case FT_F16: FFN(dotrows)(FT_F16, RM, w, wrb, x, cols, out); break;                      \
		case FT_BF16: FFN(dotrows)(FT_BF16, RM, w, wrb, x, cols, out); break;                    \
		}                                                                                        \
	}
FDOT_FN(1)
FDOT_FN(2)

// 8 weights widened to F32 (both targets include AVX2 and F16C).
FINLINE __m256 FFN(loadw8)(int T, const uint8_t *p) {
	if (T == FT_F32)
		return _mm256_loadu_ps((const float *)p);
	__m128i h = _mm_loadu_si128((const __m128i *)p);
	if (T == FT_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Transposes 8 rows of 8 and stores column t at dst + t*stride.
FINLINE void FFN(tr8x8)(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4, __m256 r5, __m256 r6,
	__m256 r7, float *dst, int stride) {
	__m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
	__m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
	__m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
	__m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
	__m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
	__m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
	__m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
	__m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
	_mm256_store_ps(dst + 0 * stride, _mm256_permute2f128_ps(u0, u4, 0x20));
	_mm256_store_ps(dst + 1 * stride, _mm256_permute2f128_ps(u1, u5, 0x20));
	_mm256_store_ps(dst + 2 * stride, _mm256_permute2f128_ps(u2, u6, 0x20));
	_mm256_store_ps(dst + 3 * stride, _mm256_permute2f128_ps(u3, u7, 0x20));
	_mm256_store_ps(dst + 4 * stride, _mm256_permute2f128_ps(u0, u4, 0x31));
	_mm256_store_ps(dst + 5 * stride, _mm256_permute2f128_ps(u1, u5, 0x31));
	_mm256_store_ps(dst + 6 * stride, _mm256_permute2f128_ps(u2, u6, 0x31));
	_mm256_store_ps(dst + 7 * stride, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// Packs weight rows [r, r+nr) × columns [k0, k0+kc) into b[k*FK_NR + rr],
// widened to F32, zero rows beyond nr. Full groups of 8 rows × 8 columns
// go through an in-register transpose.
FINLINE void FFN(packw_t)(int T, const uint8_t *w, size_t wrb, int r, int nr, int k0, int kc, float *b) {
	const int es = FFN(esize)(T);
	int rr = 0;
	for (; rr + 8 <= nr; rr += 8) {
		const uint8_t *row = w + (size_t)(r + rr) * wrb + (size_t)k0 * es;
		int k = 0;
		for (; k + 8 <= kc; k += 8) {
			const uint8_t *p = row + (size_t)k * es;
			FFN(tr8x8)(FFN(loadw8)(T, p), FFN(loadw8)(T, p + wrb), FFN(loadw8)(T, p + 2 * wrb),
				FFN(loadw8)(T, p + 3 * wrb), FFN(loadw8)(T, p + 4 * wrb), FFN(loadw8)(T, p + 5 * wrb),
				FFN(loadw8)(T, p + 6 * wrb), FFN(loadw8)(T, p + 7 * wrb), b + (size_t)k * FK_NR + rr, FK_NR);
		}
		for (; k < kc; k++)
			for (int i = 0; i < 8; i++)
				b[k * FK_NR + rr + i] = FFN(load1)(T, row + i * wrb + (size_t)k * es);
	}
	for (; rr < FK_NR; rr++) {
		if (rr >= nr) {
			for (int k = 0; k < kc; k++)
				b[k * FK_NR + rr] = 0;
			continue;
		}
		const uint8_t *row = w + (size_t)(r + rr) * wrb + (size_t)k0 * es;
		for (int k = 0; k < kc; k++)
			b[k * FK_NR + rr] = FFN(load1)(T, row + (size_t)k * es);
	}
}

static void FFN(packw)(int T, const uint8_t *w, size_t wrb, int r, int nr, int k0, int kc, float *b) {
	switch (T) {
	case FT_F32: FFN(packw_t)(FT_F32, w, wrb, r, nr, k0, kc, b); break;
	case FT_F16: FFN(packw_t)(FT_F16, w, wrb, r, nr, k0, kc, b); break;
	default: FFN(packw_t)(FT_BF16, w, wrb, r, nr, k0, kc, b); break;
	}
}

// Packs activation rows [j, j+mr) × columns [k0, k0+kc) into a[k*FK_MR + i]
// (zero rows beyond mr), reading the rows side by side.
static void FFN(packx)(const float *x, int cols, int j, int mr, int k0, int kc, float *a) {
	const float *rows[FK_MR];
	static const float zero[8] = {0};
	for (int i = 0; i < FK_MR; i++)
		rows[i] = i < mr ? x + (size_t)(j + i) * cols + k0 : zero;
#if FK_MR == 6
	// 6 rows × 8 columns at a time: transpose as 8×8 (two zero rows) and
	// store each 8-lane column at a + k*6, in increasing k so each store's
	// two spare lanes are overwritten by the next (a has 8 floats of slack).
	if (mr == FK_MR) {
		const __m256 z = _mm256_setzero_ps();
		int k = 0;
		for (; k + 8 <= kc; k += 8) {
			__m256 r0 = _mm256_loadu_ps(rows[0] + k), r1 = _mm256_loadu_ps(rows[1] + k);
			__m256 r2 = _mm256_loadu_ps(rows[2] + k), r3 = _mm256_loadu_ps(rows[3] + k);
			__m256 r4 = _mm256_loadu_ps(rows[4] + k), r5 = _mm256_loadu_ps(rows[5] + k);
			__m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
			__m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
			__m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
			__m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
			__m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
			__m256 u4 = _mm256_shuffle_ps(t4, z, 0x44), u5 = _mm256_shuffle_ps(t4, z, 0xee);
			__m256 u6 = _mm256_shuffle_ps(t5, z, 0x44), u7 = _mm256_shuffle_ps(t5, z, 0xee);
			float *d = a + (size_t)k * 6;
			_mm256_storeu_ps(d + 0, _mm256_permute2f128_ps(u0, u4, 0x20));
			_mm256_storeu_ps(d + 6, _mm256_permute2f128_ps(u1, u5, 0x20));
			_mm256_storeu_ps(d + 12, _mm256_permute2f128_ps(u2, u6, 0x20));
			_mm256_storeu_ps(d + 18, _mm256_permute2f128_ps(u3, u7, 0x20));
			_mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(u0, u4, 0x31));
			_mm256_storeu_ps(d + 30, _mm256_permute2f128_ps(u1, u5, 0x31));
			_mm256_storeu_ps(d + 36, _mm256_permute2f128_ps(u2, u6, 0x31));
			_mm256_storeu_ps(d + 42, _mm256_permute2f128_ps(u3, u7, 0x31));
		}
		for (; k < kc; k++)
			for (int i = 0; i < FK_MR; i++)
				a[k * FK_MR + i] = rows[i][k];
		return;
	}
#endif
	if (mr == FK_MR) {
		for (int k = 0; k < kc; k++) {
#pragma GCC unroll 16
			for (int i = 0; i < FK_MR; i++)
				a[k * FK_MR + i] = rows[i][k];
		}
		return;
	}
	for (int k = 0; k < kc; k++)
		for (int i = 0; i < FK_MR; i++)
			a[k * FK_MR + i] = i < mr ? rows[i][k] : 0;
}

#ifndef FK_KC
#define FK_KC 256
#endif
#define FK_MC (FK_MR * 24)
#define FK_NC (FK_NR * 32)

static int FFN(gemm)(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y,
	size_t ldy, int r0, int r1) {
	// packing buffers: one pair per OS thread, allocated on first use and
	// kept (a few hundred KiB), so calls do not pay for allocation
	static _Thread_local float *bp, *ap;
	if (!bp)
		bp = aligned_alloc(64, sizeof(float) * FK_NC * FK_KC);
	if (!ap)
		ap = aligned_alloc(64, sizeof(float) * (FK_MC * FK_KC + 16));
	if (!bp || !ap)
		return -1;
	float ctmp[FK_MR * FK_NR] __attribute__((aligned(64)));
	for (int jc = r0; jc < r1; jc += FK_NC) {
		const int nc = r1 - jc < FK_NC ? r1 - jc : FK_NC;
		for (int pc = 0; pc < cols; pc += FK_KC) {
			const int kc = cols - pc < FK_KC ? cols - pc : FK_KC;
			const int first = pc == 0;
			for (int jr = 0; jr < nc; jr += FK_NR)
				FFN(packw)(T, w, wrb, jc + jr, nc - jr < FK_NR ? nc - jr : FK_NR, pc, kc, bp + (size_t)jr * kc);
			for (int ic = 0; ic < n; ic += FK_MC) {
				const int mc = n - ic < FK_MC ? n - ic : FK_MC;
				for (int ir = 0; ir < mc; ir += FK_MR)
					FFN(packx)(x, cols, ic + ir, mc - ir < FK_MR ? mc - ir : FK_MR, pc, kc, ap + (size_t)ir * kc);
				for (int jr = 0; jr < nc; jr += FK_NR) {
					const int nr = nc - jr < FK_NR ? nc - jr : FK_NR;
					const float *b = bp + (size_t)jr * kc;
					for (int ir = 0; ir < mc; ir += FK_MR) {
						const int mr = mc - ir < FK_MR ? mc - ir : FK_MR;
						const float *a = ap + (size_t)ir * kc;
						float *c = y + (size_t)(ic + ir) * ldy + jc + jr;
						if (mr == FK_MR && nr == FK_NR) {
							FK_KERNEL(kc, a, b, c, ldy, first);
							continue;
						}
						for (int i = 0; i < mr; i++)
							for (int t = 0; t < nr; t++)
								ctmp[i * FK_NR + t] = first ? 0 : c[(size_t)i * ldy + t];
						FK_KERNEL(kc, a, b, ctmp, FK_NR, first);
						for (int i = 0; i < mr; i++)
							for (int t = 0; t < nr; t++)
								c[(size_t)i * ldy + t] = ctmp[i * FK_NR + t];
					}
				}
			}
		}
	}
	return 0;
}

// Y[j*ldy + r] for j < n, r0 <= r < r1; T is the weight type (0 F32,
// 1 F16, 30 BF16). Returns 0, or -1 when scratch memory ran out.
// Dot products of one weight row with RN activation rows (2 ≤ RN ≤ 4):
// the small-batch path, which streams the weights once without packing.
FINLINE void FFN(dotrow_n)(int T, int RN, const uint8_t *w, const float *x, int cols, float *y, size_t ldy) {
	const int es = FFN(esize)(T);
	FV acc[4][2];
	#pragma GCC unroll 4
	for (int j = 0; j < RN; j++)
		acc[j][0] = acc[j][1] = FV_ZERO();
	int k = 0;
	for (; k + 2 * FW <= cols; k += 2 * FW) {
		#pragma GCC unroll 8
		for (int off = 0; off < 2 * FW * es; off += 64)
			_mm_prefetch((const char *)(w + (size_t)k * es + off + 1024), _MM_HINT_T0);
		const FV w0 = FLOADW(T, w + (size_t)k * es), w1 = FLOADW(T, w + (size_t)(k + FW) * es);
		#pragma GCC unroll 4
		for (int j = 0; j < RN; j++) {
			acc[j][0] = FV_FMA(w0, FV_LOAD(x + (size_t)j * cols + k), acc[j][0]);
			acc[j][1] = FV_FMA(w1, FV_LOAD(x + (size_t)j * cols + k + FW), acc[j][1]);
		}
	}
	for (; k + FW <= cols; k += FW) {
		const FV w0 = FLOADW(T, w + (size_t)k * es);
		#pragma GCC unroll 4
		for (int j = 0; j < RN; j++)
			acc[j][0] = FV_FMA(w0, FV_LOAD(x + (size_t)j * cols + k), acc[j][0]);
	}
	#pragma GCC unroll 4
	for (int j = 0; j < RN; j++) {
		float t = 0;
		for (int kk = k; kk < cols; kk++)
			t = t + FFN(load1)(T, w + (size_t)kk * es) * x[(size_t)j * cols + kk];
		y[j * ldy] = FV_HSUM(FV_ADD(acc[j][0], acc[j][1])) + t;
	}
}

#define FDOTN_FN(RN)                                                                                 \
	static __attribute__((noinline)) void FCAT(FFN(dotn), RN)(int T, const uint8_t *w, size_t wrb,   \
		const float *x, int cols, float *y, size_t ldy, int r0, int r1) {                            \
		for (int r = r0; r < r1; r++) {                                                              \
			switch (T) {                                                                             \
			case FT_F32: FFN(dotrow_n)(FT_F32, RN, w + (size_t)r * wrb, x, cols, y + r, ldy); break; \
			case FT_F16: FFN(dotrow_n)(FT_F16, RN, w + (size_t)r * wrb, x, cols, y + r, ldy); break; \
			default: FFN(dotrow_n)(FT_BF16, RN, w + (size_t)r * wrb, x, cols, y + r, ldy); break;    \
			}                                                                                        \
		}                                                                                            \
	}
FDOTN_FN(2)
FDOTN_FN(3)
FDOTN_FN(4)

int FFN(mica_fmul)(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y,
	size_t ldy, int r0, int r1) {
	switch (n) {
	case 1: break;
	case 2: FCAT(FFN(dotn), 2)(T, w, wrb, x, cols, y, ldy, r0, r1); return 0;
	case 3: FCAT(FFN(dotn), 3)(T, w, wrb, x, cols, y, ldy, r0, r1); return 0;
	case 4: FCAT(FFN(dotn), 4)(T, w, wrb, x, cols, y, ldy, r0, r1); return 0;
	default: return FFN(gemm)(T, w, wrb, x, n, cols, y, ldy, r0, r1);
	}
	float out[2];
	int r = r0;
	for (; r + 2 <= r1; r += 2) {
		FCAT(FFN(dot), 2)(T, w + (size_t)r * wrb, wrb, x, cols, out);
		y[r] = out[0];
		y[r + 1] = out[1];
	}
	for (; r < r1; r++)
		FCAT(FFN(dot), 1)(T, w + (size_t)r * wrb, wrb, x, cols, y + r);
	return 0;
}
