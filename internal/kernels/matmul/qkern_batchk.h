// Batch kernel (n > 1) for the super-block types (Q2_K … Q6_K, IQ4_XS),
// part of qkern.h (AVX2 build; uses its macros and qkern_fused.h's scale
// unpacking).
//
// A tile is one weight row × up to eight activation rows. Each super-block
// is unpacked once per tile, with the fused matrix-vector kernels' register
// code: its 256 values to an aligned buffer and its
// scales to eight vectors of int16 (one per 32 values), all stored whole so
// that reading them back never waits on a partial store; then each
// activation row's super-block dot product reads them from L1 (8-row tiles:
// row by row; tiles of up to 4 rows: per 32 values, the weights and scales
// loaded once for all the rows). Per output element the float operations
// are those of the n = 1 kernels and tilek:
//   acc  = fma(broadcast(d·dy),    float(int32x8 exact sums), acc)
//   accm = fma(broadcast(dmin·dy), float(Σ bsums·mins),       accm)
// and hsum(acc) − hsum(accm) (Q2_K, Q4_K, Q5_K; the others hsum(acc), their
// stored offsets — Q3_K +4, Q6_K +32 — taken out of the exact sums through
// the activations' bsums; IQ4_XS's signed values multiply |v| by y with v's
// signs), so the outputs do not depend on n, the tile or the row split.
//
// Where the time goes (one thread, a C harness around mica_qmul, CPU time,
// ns per super-block and activation row, 1152×6912): Q4_K n = 8 5.3–5.5,
// n = 512 5.4–5.5, and no faster where a tile's activations fit L1 (K =
// 1536: 5.6; n = 512 6.0) — not bound by memory, so the Q8_0 kernel's loop
// nest (weight chunks, K segments, interleaved activations) has nothing to
// win here. The 8-row loop issues 16 integer multiplies per super-block and
// row (vpmaddubsw, vpmaddwd), as many as the Q8_0 kernel's eight blocks,
// and runs in about its time. Tiles of 4, 2, 1 rows (n < 8 and remainders)
// were slower per row (n = 4 6.2, n = 2 7.8); loading each 32 values'
// weights and scales once for the tile's rows: n = 2 7.8 → 6.1, n = 4 6.2
// → 5.0 (Q6_K 6.4 → 5.8), n = 7 (Q6_K) 7.7 → 7.2. Tried and no better:
// the same for the 8-row tile in two halves of four (Q6_K n = 512 2%
// slower), and 4-row tiles throughout (Q4_K 1–3% faster, Q5_K and Q6_K
// 8% slower). Q2_K, Q3_K and IQ4_XS joined on 2026-11-28 (the generic
// tiles before; GB/s of weights × n on 640×2048, old → new): Q3_K n = 2 3.4
// → 13.1, n = 4 9.4 → 17.8–17.9, n = 8 9.4 → 19.7–19.8, n = 512 9.2 →
// 18.1–18.2; Q2_K n = 2 4.7–5.4 → 9.0–11.5, n = 8 9.5–12.2 → 12.7–15.5,
// n = 512 11.3–11.7 → 14.3–14.4; IQ4_XS n = 2 6.6–11.1 → 9.9–15.9, n = 8
// 12.4–17.8 → 17.1–22.7, n = 512 11.3–17.0 → 14.9–20.4. IQ4_XS in its pair
// order (step_iq4xs) reads the activations from a per-thread copy of the
// group rearranged once (per use instead: n = 4, 8 0.85×): against the
// chunk order n = 2 1.14×, n = 4 1.02–1.06×, n = 8 1.01–1.05×, n = 512
// 1.04–1.05×.

typedef struct {
	int8_t a[256] __attribute__((aligned(32))); // IQ4_XS: |v| (the signs in sg)
	int8_t sg[256] __attribute__((aligned(32))); // IQ4_XS: v
	__m256i sc[8];  // int16 scale of each value pair of chunk c (32 values)
	__m256i m16;    // Q2_K/Q4_K/Q5_K: min per 16-group; Q3_K/Q6_K: scale per 16-group
	float d, dmin;
} QFN(bkblk);

// Unpack one super-block (any super-block type).
QINLINE void QFN(bkdec)(int T, const uint8_t *blk, QFN(bkblk) *k) {
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	if (T == T_Q2_K) {
		const __m256i m3 = _mm256_set1_epi8(3);
		k->d = QFN(h2f)(blk + 80);
		k->dmin = QFN(h2f)(blk + 82);
		k->m16 = _mm256_srli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)blk)), 4);
		const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_loadu_si128((const __m128i *)blk), _mm_set1_epi8(15)));
		#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * h));
			#pragma GCC unroll 4
			for (int t = 0; t < 4; t++) {
				_mm256_store_si256((__m256i *)(k->a + 32 * (4 * h + t)), _mm256_and_si256(_mm256_srli_epi16(q, 2 * t), m3));
				k->sc[4 * h + t] = QFN(pair_scales)(sc16, 4 * h + t);
			}
		}
		return;
	}
	if (T == T_Q3_K) {
		k->d = QFN(h2f)(blk + 108);
		k->dmin = 0;
		const __m256i sc16 = QFN(q3k_scales)(blk);
		k->m16 = sc16;
		const __m256i hm = _mm256_loadu_si256((const __m256i *)blk);
		#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * h));
			#pragma GCC unroll 4
			for (int t = 0; t < 4; t++) {
				_mm256_store_si256((__m256i *)(k->a + 32 * (4 * h + t)), QFN(q3k_chunk)(hm, q, 4 * h + t));
				k->sc[4 * h + t] = QFN(pair_scales)(sc16, 4 * h + t);
			}
		}
		return;
	}
	if (T == T_IQ4_XS) {
		k->d = QFN(h2f)(blk);
		k->dmin = 0;
		k->m16 = _mm256_setzero_si256();
		const __m128i l8 = QFN(iq4xs_scales)(blk);
		const __m256i scv = _mm256_set_m128i(l8, l8);
		// the pair order (step_iq4xs; see deck)
		#pragma GCC unroll 4
		for (int c = 0; c < 8; c += 2) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 8 + 16 * c));
			const __m256i lo = _mm256_shuffle_epi8(QFN(iq4lut)(), _mm256_and_si256(q, m4));
			const __m256i hi = _mm256_shuffle_epi8(QFN(iq4lut)(), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
			_mm256_store_si256((__m256i *)(k->sg + 32 * c), lo);
			_mm256_store_si256((__m256i *)(k->sg + 32 * c + 32), hi);
			_mm256_store_si256((__m256i *)(k->a + 32 * c), _mm256_abs_epi8(lo));
			_mm256_store_si256((__m256i *)(k->a + 32 * c + 32), _mm256_abs_epi8(hi));
			k->sc[c] = k->sc[c + 1] = QFN(iq4xs_pairscale)(scv, c);
		}
		return;
	}
	if (T == T_Q6_K) {
		k->d = QFN(h2f)(blk + 208);
		k->dmin = 0;
		const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
		k->m16 = sc16;
		#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			__m256i v[4];
			QFN(q6k_half)(blk, h, v);
			#pragma GCC unroll 4
			for (int t = 0; t < 4; t++) {
				_mm256_store_si256((__m256i *)(k->a + 32 * (4 * h + t)), v[t]);
				k->sc[4 * h + t] = QFN(pair_scales)(sc16, 4 * h + t);
			}
		}
		return;
	}
	const int five = T == T_Q5_K;
	const __m256i one = _mm256_set1_epi8(1);
	k->d = QFN(h2f)(blk);
	k->dmin = QFN(h2f)(blk + 2);
	__m128i sc, mn;
	QFN(q4k_scales)(blk + 4, &sc, &mn);
	k->m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_packus_epi16(mn, mn),
		_mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
	const __m256i scv = _mm256_set_m128i(sc, sc);
	const uint8_t *qs = blk + (five ? 48 : 16);
	const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
	#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
		__m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
		if (five) {
			lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
			hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
		}
		_mm256_store_si256((__m256i *)(k->a + 64 * c), lo);
		_mm256_store_si256((__m256i *)(k->a + 64 * c + 32), hi);
		k->sc[2 * c] = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c))));
		k->sc[2 * c + 1] = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2))));
	}
}

// The exact integer sum of one activation row's super-block before the
// chunks: Q3_K's and Q6_K's values are stored with an offset (+4, +32):
// start from −offset·Σ scale·bsum.
QINLINE __m256i QFN(bkstart)(int T, __m256i bsums, __m256i m16) {
	if (T != T_Q3_K && T != T_Q6_K)
		return _mm256_setzero_si256();
	return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bsums, m16), T == T_Q6_K ? 5 : 2));
}

// Chunk c of the super-block times activations v, scaled: the unsigned
// values' byte products, or (IQ4_XS) |v_w| times v with v_w's signs.
QINLINE __m256i QFN(bkdot)(int T, const QFN(bkblk) *k, int c, __m256i a, __m256i v) {
	if (T == T_IQ4_XS)
		v = _mm256_sign_epi8(v, _mm256_load_si256((const __m256i *)(k->sg + 32 * c)));
	return QSDOT_UW(a, v, k->sc[c]);
}

QINLINE void QFN(bktile)(int T, int RN, const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb, int nb,
	float *y, size_t ldy) {
	const int bs = QFN(bsize)(T), mins = QFN(kmin)(T);
	__m256 acc[8], accm[8];
	QFN(bkblk) kb;
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++) {
		acc[j] = _mm256_setzero_ps();
		accm[j] = _mm256_setzero_ps();
	}
	for (int b = 0; b < nb; b++) {
		const uint8_t *blk = w + (size_t)b * bs;
		_mm_prefetch((const char *)(blk + QB_PF), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + QB_PF + 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + QB_PF + 128), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + QB_PF + bs - 1), _MM_HINT_T0);
		QFN(bkdec)(T, blk, &kb);
		if (RN == 8) {
			#pragma GCC unroll 8
			for (int j = 0; j < RN; j++) {
				const uint8_t *yb = x + j * xrb + (size_t)b * 292;
				float dy;
				memcpy(&dy, yb, 4);
				const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
				__m256i s = QFN(bkstart)(T, bsums, kb.m16);
				#pragma GCC unroll 8
				for (int c = 0; c < 8; c++) {
					const __m256i a = _mm256_load_si256((const __m256i *)(kb.a + 32 * c));
					s = _mm256_add_epi32(s, QFN(bkdot)(T, &kb, c, a, _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c))));
				}
				acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(kb.d * dy), _mm256_cvtepi32_ps(s), acc[j]);
				if (mins)
					accm[j] = _mm256_fmadd_ps(_mm256_set1_ps(kb.dmin * dy),
						_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, kb.m16)), accm[j]);
			}
		} else {
			// up to four rows: per 32 values, the weights and their scales
			// are loaded once for all the rows' products
			const uint8_t *yb = x + (size_t)b * 292;
			__m256i s[4], bsums[4];
			#pragma GCC unroll 4
			for (int j = 0; j < RN; j++) {
				bsums[j] = _mm256_loadu_si256((const __m256i *)(yb + j * xrb + 260));
				s[j] = QFN(bkstart)(T, bsums[j], kb.m16);
			}
			#pragma GCC unroll 8
			for (int c = 0; c < 8; c++) {
				const __m256i a = _mm256_load_si256((const __m256i *)(kb.a + 32 * c));
				#pragma GCC unroll 4
				for (int j = 0; j < RN; j++)
					s[j] = _mm256_add_epi32(s[j], QFN(bkdot)(T, &kb, c, a, _mm256_loadu_si256((const __m256i *)(yb + j * xrb + 4 + 32 * c))));
			}
			#pragma GCC unroll 4
			for (int j = 0; j < RN; j++) {
				float dy;
				memcpy(&dy, yb + j * xrb, 4);
				acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(kb.d * dy), _mm256_cvtepi32_ps(s[j]), acc[j]);
				if (mins)
					accm[j] = _mm256_fmadd_ps(_mm256_set1_ps(kb.dmin * dy),
						_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums[j], kb.m16)), accm[j]);
			}
		}
	}
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++)
		y[j * ldy] = mins ? QFN(hsum)(acc[j]) - QFN(hsum)(accm[j]) : QFN(hsum)(acc[j]);
}

#define QBK_FN(RN)                                                                                   \
	static __attribute__((noinline)) void QCAT(QFN(bk), RN)(int T, const uint8_t *w, size_t wrb, \
		const uint8_t *x, size_t xrb, int nb, float *y, size_t ldy) {                        \
		switch (T) {                                                                         \
		case T_Q4_K: QFN(bktile)(T_Q4_K, RN, w, wrb, x, xrb, nb, y, ldy); break;             \
		case T_Q5_K: QFN(bktile)(T_Q5_K, RN, w, wrb, x, xrb, nb, y, ldy); break;             \
		case T_Q6_K: QFN(bktile)(T_Q6_K, RN, w, wrb, x, xrb, nb, y, ldy); break;             \
		case T_Q2_K: QFN(bktile)(T_Q2_K, RN, w, wrb, x, xrb, nb, y, ldy); break;             \
		case T_Q3_K: QFN(bktile)(T_Q3_K, RN, w, wrb, x, xrb, nb, y, ldy); break;             \
		case T_IQ4_XS: QFN(bktile)(T_IQ4_XS, RN, w, wrb, x, xrb, nb, y, ldy); break;         \
		}                                                                                    \
	}
QBK_FN(8)
QBK_FN(4)
QBK_FN(2)
QBK_FN(1)

// Super-block weights, n > 1 activation rows: each weight row with the
// activation rows eight (then four, two, one) at a time. IQ4_XS reads the
// activations from a per-thread copy of each group in its pair order
// (iq4xs_ry); returns 0, computing nothing, when there is no memory for it
// (the caller then uses the generic tiles, which give the same values).
static __attribute__((noinline)) int QFN(batch_k)(int T, const uint8_t *w, size_t wrb, const uint8_t *x,
	size_t xrb, int n, int nb, float *y, size_t ldy, int r0, int r1) {
	typedef void (*fn)(int, const uint8_t *, size_t, const uint8_t *, size_t, int, float *, size_t);
	const fn f[4] = {QCAT(QFN(bk), 8), QCAT(QFN(bk), 4), QCAT(QFN(bk), 2), QCAT(QFN(bk), 1)};
	const int cw[4] = {8, 4, 2, 1};
	// activation rows in groups of about 128 KiB, so a group stays in L2
	// while the weight rows stream past it
	int jb = (int)((128 << 10) / xrb) / 8 * 8;
	if (jb < 8)
		jb = 8;
	static _Thread_local uint8_t *rx;
	static _Thread_local size_t rxcap;
	if (T == T_IQ4_XS) {
		const size_t need = (size_t)(jb < n ? jb : n) * xrb;
		if (rxcap < need) {
			free(rx);
			rx = aligned_alloc(64, (need + 63) / 64 * 64);
			rxcap = rx ? need : 0;
			if (!rx)
				return 0;
		}
	}
	for (int j0 = 0; j0 < n; j0 += jb) {
		const int j1 = n - j0 < jb ? n : j0 + jb;
		const uint8_t *xg = x + (size_t)j0 * xrb;
		if (T == T_IQ4_XS) {
			for (int j = j0; j < j1; j++)
				for (int b = 0; b < nb; b++) {
					const uint8_t *src = x + (size_t)j * xrb + (size_t)b * 292;
					uint8_t *dst = rx + (size_t)(j - j0) * xrb + (size_t)b * 292;
					memcpy(dst, src, 4); // d
					memcpy(dst + 260, src + 260, 32); // bsums
					QFN(iq4xs_ry)(src, dst + 4);
				}
			xg = rx;
		}
		for (int r = r0; r < r1; r++)
			for (int j = j0; j < j1;) {
				int k = 0;
				while (j + cw[k] > j1)
					k++;
				f[k](T, w + (size_t)r * wrb, wrb, xg + (size_t)(j - j0) * xrb, xrb, nb, y + (size_t)j * ldy + r, ldy);
				j += cw[k];
			}
	}
	return 1;
}
