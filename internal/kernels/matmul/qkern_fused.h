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

// ---------------------------------------------------------------- fused matrix-vector Q8_0 and Q4_0

// For n = 1, Q8_0 and Q4_0 weights: 8-lane float accumulators per row,
// reduced once at the end; blocks taken in pairs so a row's two weight
// scales are converted and multiplied by the activation scales in one
// vector operation. The per-row sequence does not depend on how many rows
// a call does together, so every row split gives identical results.

// Software prefetch distance of the Q8_0 row stream, in bytes (measured on
// 262144×640: 2 KiB ≈ 4 KiB > 1 KiB, 8 KiB; none: much slower; prefetcht1
// or prefetchnta no better).
#define QMV_PF 2048

// dw (two halves at p and p+stride) times the activation scales dy2.
QINLINE __m128 QFN(scale2)(const uint8_t *p, size_t stride, __m128 dy2) {
	const uint32_t h = (uint32_t)QFN(ld16)(p) | (uint32_t)QFN(ld16)(p + stride) << 16;
	return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h)), dy2);
}

// Q8_0: one row at a time, so the weights are read strictly sequentially
// (with 4 interleaved row streams the hardware prefetcher kept up much
// worse: 262144×640 streamed ~1.4× faster one row at a time). One 8-lane
// accumulator updated block by block, as in the tile kernels (tile32), so
// each output is the same float sequence whatever n is.
// Every 64-byte line ahead is software-prefetched.
// dyb: the activation scales as floats (NULL: converted here, the same values).
QINLINE float QFN(mv_q8_0)(const uint8_t *w, const uint8_t *x, const float *dyb, int nb) {
	__m256 acc = _mm256_setzero_ps();
	const __m256i idx1 = _mm256_set1_epi32(1);
	int b = 0;
	#pragma GCC unroll 2
	for (; b + 2 <= nb; b += 2) {
		const uint8_t *xa = x + (size_t)b * 34, *wa = w + (size_t)b * 34;
		_mm_prefetch((const char *)(wa + QMV_PF), _MM_HINT_T0);
		_mm_prefetch((const char *)(wa + QMV_PF + 64), _MM_HINT_T0);
		const __m256i ya = _mm256_loadu_si256((const __m256i *)(xa + 2));
		const __m256i yb = _mm256_loadu_si256((const __m256i *)(xa + 36));
		const __m128 dy2 = dyb ? _mm_castpd_ps(_mm_load_sd((const double *)(dyb + b)))
			: _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)QFN(ld16)(xa) | (uint32_t)QFN(ld16)(xa + 34) << 16)));
		const __m128 s = QFN(scale2)(wa, 34, dy2);
		const __m256 sa = _mm256_broadcastss_ps(s);
		const __m256 sb = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), idx1);
		const __m256i qa = _mm256_loadu_si256((const __m256i *)(wa + 2));
		const __m256i qb = _mm256_loadu_si256((const __m256i *)(wa + 36));
		acc = _mm256_fmadd_ps(sa, _mm256_cvtepi32_ps(QDOT_S(qa, ya)), acc);
		acc = _mm256_fmadd_ps(sb, _mm256_cvtepi32_ps(QDOT_S(qb, yb)), acc);
	}
	if (b < nb) {
		const uint8_t *xa = x + (size_t)b * 34, *wa = w + (size_t)b * 34;
		const __m256i ya = _mm256_loadu_si256((const __m256i *)(xa + 2));
		const __m256i qa = _mm256_loadu_si256((const __m256i *)(wa + 2));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(wa) * QFN(h2f)(xa)), _mm256_cvtepi32_ps(QDOT_S(qa, ya)), acc);
	}
	return QFN(hsum)(acc);
}

// Q4_0 pairs: one 256-bit vector holds block A's 16 bytes (low half) and
// block B's (high half); AND gives elements 0..15 of both, shift+AND
// elements 16..31, against activations rearranged the same way. Lanes 0..3
// of the integer sum belong to A, 4..7 to B. Weights are decoded unsigned
// (q+8); 8·Σy per lane is subtracted (exact). The activation side of each
// pair (rearranged bytes, 8·Σy, the two scales) is computed once per call.
typedef struct {
	__m256i ylo, yhi, yoff;
	float dy[8];
} QFN(q4pair);

QINLINE void QFN(q4pairs)(const uint8_t *x, int np, QFN(q4pair) *pp) {
	const __m256i ones8 = _mm256_set1_epi8(1);
	for (int k = 0; k < np; k++) {
		const uint8_t *xa = x + (size_t)k * 68;
		const __m256i ylo = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(xa + 36)), _mm_loadu_si128((const __m128i *)(xa + 2)));
		const __m256i yhi = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(xa + 52)), _mm_loadu_si128((const __m128i *)(xa + 18)));
		pp[k].ylo = ylo;
		pp[k].yhi = yhi;
		pp[k].yoff = _mm256_slli_epi32(QDOT_U2(ones8, ylo, ones8, yhi), 3);
		_mm_storeu_ps(pp[k].dy, _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)QFN(ld16)(xa) | (uint32_t)QFN(ld16)(xa + 34) << 16))));
	}
}

QINLINE void QFN(mv_q4_0)(int RM, const uint8_t *w, size_t wrb, const uint8_t *x, const QFN(q4pair) *pp, int nb,
	float *y, size_t pfd) {
	__m256 acc[8];
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		acc[i] = _mm256_setzero_ps();
	const __m256i m4 = _mm256_set1_epi8(0x0f), ones8 = _mm256_set1_epi8(1);
	const __m256i half = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
	int b = 0;
	for (; b + 2 <= nb; b += 2) {
		QFN(q4pair) tmp;
		const QFN(q4pair) *q = pp + b / 2;
		if (!pp) { // rows too long for the precomputed pairs: the same values, made here
			QFN(q4pairs)(x + (size_t)b * 34, 1, &tmp);
			q = &tmp;
		}
		const __m256i ylo = q->ylo, yhi = q->yhi, yoff = q->yoff;
		const __m128 dy2 = _mm_loadu_ps(q->dy);
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = w + i * wrb + (size_t)b * 18;
			_mm_prefetch((const char *)(wa + pfd), _MM_HINT_T0);
			const __m256 sv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(QFN(scale2)(wa, 18, dy2)), half);
			const __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(wa + 20)), _mm_loadu_si128((const __m128i *)(wa + 2)));
			const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			const __m256i p = _mm256_sub_epi32(QDOT_U2(lo, ylo, hi, yhi), yoff);
			acc[i] = _mm256_fmadd_ps(sv, _mm256_cvtepi32_ps(p), acc[i]);
		}
	}
	if (b < nb) {
		const uint8_t *xa = x + (size_t)b * 34;
		const __m256i yq = _mm256_loadu_si256((const __m256i *)(xa + 2));
		const __m256i yoff = _mm256_slli_epi32(QDOT_U(ones8, yq), 3);
		const float dy = QFN(h2f)(xa);
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = w + i * wrb + (size_t)b * 18;
			const __m256i p = _mm256_sub_epi32(QDOT_U(QFN(nib32)(wa + 2), yq), yoff);
			acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(wa) * dy), _mm256_cvtepi32_ps(p), acc[i]);
		}
	}
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		y[i] = QFN(hsum)(acc[i]);
}

#define QMV_LOOP4(RM)                 \
	for (; r + RM <= r1; r += RM) \
		QFN(mv_q4_0)(RM, w + (size_t)r * wrb, wrb, x, pp, nb, y + r, (size_t)RM * wrb)

// Q4_0: the activation side of at most this many block pairs is
// precomputed (on the stack, 20 KiB); longer rows compute it per tile.
enum { QMV_MAXPAIRS = 160 };
// Q8_0: the activation scales of at most this many blocks are converted
// once (on the stack); longer rows convert them per row.
enum { QMV_MAXDY = 1024 };

// Q8_0 one row at a time; Q4_0 (compute-bound: the activation side is
// shared) four rows at a time, each prefetching the next tile's same block.
static __attribute__((noinline)) void QFN(mv32)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, int nb,
	float *y, int r0, int r1) {
	int r = r0;
	if (T == T_Q8_0) {
		float buf[QMV_MAXDY];
		float *dyb = nb <= QMV_MAXDY ? buf : NULL;
		if (dyb)
			for (int b = 0; b < nb; b++)
				dyb[b] = QFN(h2f)(x + (size_t)b * 34);
		for (; r < r1; r++)
			y[r] = QFN(mv_q8_0)(w + (size_t)r * wrb, x, dyb, nb);
		return;
	}
	QFN(q4pair) buf[QMV_MAXPAIRS];
	QFN(q4pair) *pp = nb / 2 <= QMV_MAXPAIRS ? buf : NULL;
	if (pp)
		QFN(q4pairs)(x, nb / 2, pp);
	QMV_LOOP4(4);
	QMV_LOOP4(1);
}
