// Fused matrix-vector kernels for the super-block types, part of qkern.h
// (compiled once per instruction set through it; uses its macros).

// ---------------------------------------------------------------- fused matrix-vector K-quants

// For n = 1 the super-block types skip the decoded copy: each super-block
// is unpacked in registers and multiplied at once. One weight row at a time
// (per-element sequence independent of the row range).

// Unsigned bytes × signed bytes, pair sums weighted by int16 scales.
#define QSDOT_UW(a, v, sc16) _mm256_madd_epi16(_mm256_maddubs_epi16(a, v), sc16)

// Q4_K: 6-bit scales/mins unpacked with 32-bit word operations.
QINLINE void QFN(q4k_scales)(const uint8_t *s, __m128i *sc, __m128i *mn) {
	uint32_t w0, w1, w2;
	memcpy(&w0, s, 4);
	memcpy(&w1, s + 4, 4);
	memcpy(&w2, s + 8, 4);
	const uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
	uint32_t sc03 = w0 & lo6, mn03 = w1 & lo6;
	uint32_t sc47 = (w2 & lo4) | (((w0 >> 6) & lo2) << 4);
	uint32_t mn47 = ((w2 >> 4) & lo4) | (((w1 >> 6) & lo2) << 4);
	*sc = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc47, (int)sc03));
	*mn = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mn47, (int)mn03));
}

// Q4_K (five = 0) and Q5_K (five = 1, fifth bit from qh).
// pf is the prefetch distance in bytes (the row length: the same block of
// the next row).
QINLINE float QFN(dot_q45k)(int five, const uint8_t *w, size_t pf, const uint8_t *x, int nb) {
	const int bs = five ? 176 : 144;
	const __m256i one = _mm256_set1_epi8(1);
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	__m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *blk = w + (size_t)b * bs, *yb = x + (size_t)b * 292;
		_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 128), _MM_HINT_T0);
		if (five)
			_mm_prefetch((const char *)(blk + pf + 175), _MM_HINT_T0);
		const uint8_t *qs = blk + (five ? 48 : 16);
		const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
		float dy;
		memcpy(&dy, yb, 4);
		__m128i sc, mn;
		QFN(q4k_scales)(blk + 4, &sc, &mn);
		// mins per 16-group: mn[g/2]
		const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_packus_epi16(mn, mn),
			_mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
		const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
		const __m256i scv = _mm256_set_m128i(sc, sc);
		__m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
		for (int c = 0; c < 4; c++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
			__m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
			if (five) {
				lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
				hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
			}
			const __m256i s0 = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c))));
			const __m256i s1 = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2))));
			const __m256i y0 = _mm256_loadu_si256((const __m256i *)(yb + 4 + 64 * c));
			const __m256i y1 = _mm256_loadu_si256((const __m256i *)(yb + 4 + 64 * c + 32));
			s = _mm256_add_epi32(s, QSDOT_UW(lo, y0, s0));
			s = _mm256_add_epi32(s, QSDOT_UW(hi, y1, s1));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk) * dy), _mm256_cvtepi32_ps(s), acc);
		accm = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 2) * dy),
			_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, mins)), accm);
	}
	return QFN(hsum)(acc) - QFN(hsum)(accm);
}

QINLINE float QFN(dot_q6k)(const uint8_t *w, size_t pf, const uint8_t *x, int nb) {
	const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
	__m256 acc = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *blk = w + (size_t)b * 210, *yb = x + (size_t)b * 292;
		_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 128), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 192), _MM_HINT_T0);
		float dy;
		memcpy(&dy, yb, 4);
		// 16 signed scales as int16; word c holds the pair (scale 2c, 2c+1)
		const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
		const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
		// values are stored +32: subtract 32·Σ scale·bsum (exact integers)
		__m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 5));
		const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
			2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
			const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
			const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
			__m256i v[4];
			v[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
			v[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(12)), 2));
			v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
			v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
				_mm256_and_si256(_mm256_srli_epi16(qh, 2), _mm256_set1_epi8(0x30)));
#pragma GCC unroll 4
			for (int t = 0; t < 4; t++) {
				const int c = 4 * h + t;
				const __m256i scw = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(c)), pick);
				const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
				s = _mm256_add_epi32(s, QSDOT_UW(v[t], y, scw));
			}
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 208) * dy), _mm256_cvtepi32_ps(s), acc);
	}
	return QFN(hsum)(acc);
}

// Int16 scales for chunk c (32 values, groups 2c and 2c+1) from 16 int16
// group scales: word c holds the pair; spread it over the two halves.
QINLINE __m256i QFN(pair_scales)(__m256i sc16, int c) {
	const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
		2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
	return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(c)), pick);
}

QINLINE float QFN(dot_q2k)(const uint8_t *w, size_t pf, const uint8_t *x, int nb) {
	const __m256i m3 = _mm256_set1_epi8(3);
	__m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *blk = w + (size_t)b * 84, *yb = x + (size_t)b * 292;
		_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 83), _MM_HINT_T0);
		float dy;
		memcpy(&dy, yb, 4);
		const __m128i sb = _mm_loadu_si128((const __m128i *)blk);
		const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sb, _mm_set1_epi8(15)));
		const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(15)));
		const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
		__m256i s = _mm256_setzero_si256();
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * h));
#pragma GCC unroll 4
			for (int t = 0; t < 4; t++) {
				const int c = 4 * h + t;
				const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * t), m3);
				const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
				s = _mm256_add_epi32(s, QSDOT_UW(v, y, QFN(pair_scales)(sc16, c)));
			}
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 80) * dy), _mm256_cvtepi32_ps(s), acc);
		accm = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 82) * dy),
			_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, mn16)), accm);
	}
	return QFN(hsum)(acc) - QFN(hsum)(accm);
}

QINLINE float QFN(dot_q3k)(const uint8_t *w, size_t pf, const uint8_t *x, int nb) {
	const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
	__m256 acc = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *blk = w + (size_t)b * 110, *yb = x + (size_t)b * 292;
		_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 109), _MM_HINT_T0);
		float dy;
		memcpy(&dy, yb, 4);
		// 16 six-bit scales: low 4 bits from bytes 0..7, high 2 from 8..11
		uint32_t w0, w1, w2;
		memcpy(&w0, blk + 96, 4);
		memcpy(&w1, blk + 100, 4);
		memcpy(&w2, blk + 104, 4);
		const uint32_t lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
		const __m128i sb = _mm_setr_epi32((int)((w0 & lo4) | ((w2 & lo2) << 4)),
			(int)((w1 & lo4) | (((w2 >> 2) & lo2) << 4)), (int)(((w0 >> 4) & lo4) | (((w2 >> 4) & lo2) << 4)),
			(int)(((w1 >> 4) & lo4) | (((w2 >> 6) & lo2) << 4)));
		const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(sb, _mm_set1_epi8(32)));
		const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
		// values are stored q+4 (0..7): subtract 4·Σ scale·bsum
		__m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 2));
		const __m256i hm = _mm256_loadu_si256((const __m256i *)blk);
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * h));
#pragma GCC unroll 4
			for (int t = 0; t < 4; t++) {
				const int c = 4 * h + t;
				const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, c), one);
				const __m256i v = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * t), m3), _mm256_slli_epi16(hb, 2));
				const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
				s = _mm256_add_epi32(s, QSDOT_UW(v, y, QFN(pair_scales)(sc16, c)));
			}
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 108) * dy), _mm256_cvtepi32_ps(s), acc);
	}
	return QFN(hsum)(acc);
}

QINLINE float QFN(dot_iq4xs)(const uint8_t *w, size_t pf, const uint8_t *x, int nb) {
	const __m256i lut = QFN(iq4lut)();
	__m256 acc = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *blk = w + (size_t)b * 136, *yb = x + (size_t)b * 292;
		_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(blk + pf + 135), _MM_HINT_T0);
		float dy;
		memcpy(&dy, yb, 4);
		uint16_t h;
		memcpy(&h, blk + 2, 2);
		short ls[8];
#pragma GCC unroll 8
		for (int c = 0; c < 8; c++)
			ls[c] = (short)((((blk[4 + c / 2] >> (4 * (c % 2))) & 15) | (((h >> (2 * c)) & 3) << 4)) - 32);
		const __m128i l8 = _mm_setr_epi16(ls[0], ls[1], ls[2], ls[3], ls[4], ls[5], ls[6], ls[7]);
		const __m256i scv = _mm256_set_m128i(l8, l8);
		__m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
		for (int c = 0; c < 8; c++) {
			const __m256i v = _mm256_shuffle_epi8(lut, QFN(nib32)(blk + 8 + 16 * c));
			const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
			const __m256i scw = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((2 * c + 1) << 8) | (2 * c))));
			s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(y, v)), scw));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk) * dy), _mm256_cvtepi32_ps(s), acc);
	}
	return QFN(hsum)(acc);
}

static __attribute__((noinline)) void QFN(mv_kfused)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, int nb,
	float *y, int r0, int r1) {
	for (int r = r0; r < r1; r++) {
		const uint8_t *wr = w + (size_t)r * wrb;
		switch (T) {
		case T_Q4_K: y[r] = QFN(dot_q45k)(0, wr, wrb, x, nb); break;
		case T_Q5_K: y[r] = QFN(dot_q45k)(1, wr, wrb, x, nb); break;
		case T_Q6_K: y[r] = QFN(dot_q6k)(wr, wrb, x, nb); break;
		case T_Q2_K: y[r] = QFN(dot_q2k)(wr, wrb, x, nb); break;
		case T_Q3_K: y[r] = QFN(dot_q3k)(wr, wrb, x, nb); break;
		default: y[r] = QFN(dot_iq4xs)(wr, wrb, x, nb); break;
		}
	}
}

