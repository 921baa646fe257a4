// Quantized matrix-product kernels, written once and compiled for two
// instruction sets: the including file defines QK_ISA (a name suffix) and
// the integer dot macros, and wraps the include in a target pragma.
//
// Every output element Y[j][r] is computed by the same sequence of vector
// operations whatever the tile it falls in (tiles of RM weight rows × RN
// activation rows differ only in how many independent elements they carry),
// so results do not depend on how rows are split between calls.
//
// Integer parts are exact. Per block (32 elements) or super-block (256):
//   acc  = fma(broadcast(dw*dy), float(int32x8 partial sums), acc)
// and for types with block minimums a second accumulator; the element is
// the horizontal sum of acc (minus that of the min accumulator).

// QDOT_A(ay, q, y): the int32 lanes of QDOT_S(q, y) given ay = |y| (vpabsb),
// for weights q >= -127 (IQ4_NL table values; not Q8_0, whose -128 has no
// negation): |y|·(q·sgn y) = q·y byte by byte, the same products as
// |q|·(y·sgn q), and no pair sum reaches 2·128·127 < 32768, so the same
// integers. With |y| shared by several weight rows, one vpsignb per block
// instead of two. An ISA without its own version uses QDOT_S (the same
// values).
#ifndef QDOT_A
#define QDOT_A(ay, q, y) QDOT_S(q, y)
#endif

#define QCAT2(a, b) a##_##b
#define QCAT(a, b) QCAT2(a, b)
#define QFN(name) QCAT(name, QK_ISA)
#define QINLINE static inline __attribute__((always_inline))

QINLINE float QFN(h2f)(const uint8_t *p) {
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

QINLINE float QFN(hsum)(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

QINLINE uint16_t QFN(ld16)(const uint8_t *p) {
	uint16_t h;
	memcpy(&h, p, 2);
	return h;
}

// 32 bits → 32 bytes, byte e = 0x10 when bit e is set, else 0 (a Q5
// block's fifth bits): one shuffle (byte e gets byte e/8), one AND (keeps
// bit e%8) and one vpsignb that turns a kept bit into 16 (the table holds
// -16 where the kept bit is bit 7, whose byte reads as negative).
QINLINE __m256i QFN(bits16)(const uint8_t *p) {
	uint32_t u;
	memcpy(&u, p, 4);
	const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
	const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
	const __m256i sixteen = _mm256_set1_epi64x((long long)0xf010101010101010ULL);
	return _mm256_sign_epi8(sixteen, _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)u), sel), bit));
}

// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles.
QINLINE __m256i QFN(nib32)(const uint8_t *p) {
	// broadcast the 16 bytes to both halves (a load, no shuffle), shift the
	// upper half right by 4, mask
	__m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
	b = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

QINLINE __m256i QFN(iq4lut)(void) {
	return _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
		-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
}

// Chunks c, c+1 (c even) of a Q8_K block's values (yb: the block) in
// IQ4_XS's pair order: ylo = values 0..15 of chunk c, then of chunk c+1;
// yhi = values 16..31 of each.
QINLINE void QFN(iq4xs_ypair)(const uint8_t *yb, int c, __m256i *ylo, __m256i *yhi) {
	const uint8_t *ya = yb + 4 + 32 * c;
	*ylo = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(ya + 32)), _mm_loadu_si128((const __m128i *)ya));
	*yhi = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(ya + 48)), _mm_loadu_si128((const __m128i *)(ya + 16)));
}

// ---------------------------------------------------------------- 32-element blocks

enum { T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q2_K = 10, T_Q3_K = 11,
	T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_IQ4_NL = 20, T_IQ4_XS = 23 };

QINLINE int QFN(bsize)(int T) {
	switch (T) {
	case T_Q4_0: return 18;
	case T_Q4_1: return 20;
	case T_Q5_0: return 22;
	case T_Q5_1: return 24;
	case T_Q8_0: return 34;
	case T_IQ4_NL: return 18;
	case T_Q2_K: return 84;
	case T_Q3_K: return 110;
	case T_Q4_K: return 144;
	case T_Q5_K: return 176;
	case T_Q6_K: return 210;
	case T_IQ4_XS: return 136;
	}
	return 0;
}

// The fifth bits of a Q5_0 or Q5_1 (T) block pair as mv_q4p's pair
// vectors take them: lo's byte e = 0x10 when bit e of block A's qh is set
// (e < 16, low half) or bit e − 16 of block B's (high half); hi the same
// for bits 16..31. One 32-byte load from A's qh (B's, one block on, falls
// in its high half), then per vector one shuffle, AND and vpsignb as
// bits16.
QINLINE void QFN(bits16p)(int T, const uint8_t *pair, __m256i *lo, __m256i *hi) {
	const int b = QFN(bsize)(T) - 16; // B's qh in the high half
	const __m256i q = _mm256_loadu_si256((const __m256i *)(pair + (T == T_Q5_1 ? 4 : 2)));
	const __m256i sl = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
		b, b, b, b, b, b, b, b, b + 1, b + 1, b + 1, b + 1, b + 1, b + 1, b + 1, b + 1);
	const __m256i sh = _mm256_add_epi8(sl, _mm256_set1_epi8(2));
	const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
	const __m256i sixteen = _mm256_set1_epi64x((long long)0xf010101010101010ULL);
	*lo = _mm256_sign_epi8(sixteen, _mm256_and_si256(_mm256_shuffle_epi8(q, sl), bit));
	*hi = _mm256_sign_epi8(sixteen, _mm256_and_si256(_mm256_shuffle_epi8(q, sh), bit));
}

// Types whose weights decode to unsigned values and carry a min term (Q8_1).
QINLINE int QFN(has_min32)(int T) { return T == T_Q4_1 || T == T_Q5_1; }

// Decode one 32-element weight block: values (signed for Q8_0 and IQ4_NL,
// unsigned otherwise), scale d and min m.
QINLINE __m256i QFN(dec32)(int T, const uint8_t *b, float *d, float *m) {
	*d = QFN(h2f)(b);
	*m = 0;
	switch (T) {
	case T_Q8_0:
		return _mm256_loadu_si256((const __m256i *)(b + 2));
	case T_Q4_0: // unsigned here: the -8 is applied through the activation sums
		return QFN(nib32)(b + 2);
	case T_IQ4_NL:
		return _mm256_shuffle_epi8(QFN(iq4lut)(), QFN(nib32)(b + 2));
	case T_Q4_1:
		*m = QFN(h2f)(b + 2);
		return QFN(nib32)(b + 4);
	case T_Q5_0: // unsigned here: the -16 is applied through the activation sums
		return _mm256_or_si256(QFN(nib32)(b + 6), QFN(bits16)(b + 2));
	case T_Q5_1:
		*m = QFN(h2f)(b + 2);
		return _mm256_or_si256(QFN(nib32)(b + 8), QFN(bits16)(b + 4));
	}
	return _mm256_setzero_si256();
}

// Tile of RM weight rows × RN activation rows over nb 32-element blocks.
QINLINE void QFN(tile32)(int T, int RM, int RN, const uint8_t *w, size_t wrb, const uint8_t *x,
	size_t xrb, int nb, float *y, size_t ldy) {
	const int bs = QFN(bsize)(T);
	const int hm = QFN(has_min32)(T);
	const int yo = hm ? 4 : 2, ybs = hm ? 36 : 34;
	// Q4_0/Q5_0 decode to q+8 / q+16: Σ q·y = Σ (q+off)·y − off·Σ y, done
	// per 4-byte lane, so the int32 lanes equal those of a signed product.
	const int offshift = T == T_Q4_0 ? 3 : T == T_Q5_0 ? 4 : 0;
	const __m256i ones8 = _mm256_set1_epi8(1);
	__m256 acc[4][4];
	__m128 accm[4]; // per activation row: lane i = Σ min(row i)·sum(y), the Q8_1 term
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++) {
		accm[j] = _mm_setzero_ps();
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
			acc[i][j] = _mm256_setzero_ps();
	}
	// All but Q8_0 follow the n = 1 kernel's pair order (mv_q4p): blocks 2k and
	// 2k+1 are added by one multiply-add, lanes 0..3 holding block 2k's
	// folded lane sums (lane l + lane l+4, exact integers) and lanes 4..7
	// block 2k+1's; an odd last block is added alone over all eight lanes.
	const int pairs = T != T_Q8_0;
	__m256i pend[4][4];
	__m256 ddpend[4];
	for (int b = 0; b < nb; b++) {
		__m256i q[4];
		float d[4], m[4];
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wb = w + i * wrb + (size_t)b * bs;
			_mm_prefetch((const char *)(wb + RM * wrb), _MM_HINT_T0); // same block, next tile's rows
			q[i] = QFN(dec32)(T, wb, &d[i], &m[i]);
		}
		// the RM weight scales, converted together (lane i = row i); the
		// products with dy are the same IEEE products as scalar ones
		const uint8_t *w0 = w + (size_t)b * bs;
		const __m128i h4 = _mm_setr_epi16((short)QFN(ld16)(w0), RM > 1 ? (short)QFN(ld16)(w0 + wrb) : 0,
			RM > 2 ? (short)QFN(ld16)(w0 + 2 * wrb) : 0, RM > 3 ? (short)QFN(ld16)(w0 + 3 * wrb) : 0, 0, 0, 0, 0);
		const __m256 dw = _mm256_cvtph_ps(_mm_unpacklo_epi64(h4, h4)); // both halves: rows 0..3
		const __m128 mw = hm ? _mm_cvtph_ps(_mm_setr_epi16((short)QFN(ld16)(w0 + 2),
			RM > 1 ? (short)QFN(ld16)(w0 + wrb + 2) : 0, RM > 2 ? (short)QFN(ld16)(w0 + 2 * wrb + 2) : 0,
			RM > 3 ? (short)QFN(ld16)(w0 + 3 * wrb + 2) : 0, 0, 0, 0, 0)) : _mm_setzero_ps();
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const uint8_t *yb = x + j * xrb + (size_t)b * ybs;
			const __m256i yq = _mm256_loadu_si256((const __m256i *)(yb + yo));
			const float dy = QFN(h2f)(yb);
			const float sy = hm ? QFN(h2f)(yb + 2) : 0.0f;
			const __m256i yoff = offshift ? _mm256_slli_epi32(QDOT_U(ones8, yq), offshift) : _mm256_setzero_si256();
			const __m256 dd = _mm256_mul_ps(dw, _mm256_set1_ps(dy));
			if (hm)
				accm[j] = _mm_add_ps(accm[j], _mm_mul_ps(mw, _mm_set1_ps(sy)));
			if (pairs && !(b & 1))
				ddpend[j] = dd;
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				__m256i p = offshift ? _mm256_sub_epi32(QDOT_U(q[i], yq), yoff)
					: hm ? QDOT_U(q[i], yq) : QDOT_S(q[i], yq);
				const __m256 sc = _mm256_permute_ps(dd, 0x55 * i);
				if (pairs && !(b & 1) && b + 1 < nb) { // first of a pair: kept
					pend[i][j] = p;
					continue;
				}
				if (pairs && (b & 1)) { // second of a pair: fold both, A low, B high
					const __m256i f = _mm256_add_epi32(_mm256_permute2x128_si256(pend[i][j], p, 0x20),
						_mm256_permute2x128_si256(pend[i][j], p, 0x31));
					const __m256 s2 = _mm256_permute_ps(_mm256_blend_ps(ddpend[j], dd, 0xf0), 0x55 * i);
					acc[i][j] = _mm256_fmadd_ps(s2, _mm256_cvtepi32_ps(f), acc[i][j]);
					continue;
				}
				acc[i][j] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(p), acc[i][j]);
			}
		}
	}
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++) {
		float am[4];
		_mm_storeu_ps(am, accm[j]);
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
			y[j * ldy + i] = QFN(hsum)(acc[i][j]) + am[i];
	}
}

// ---------------------------------------------------------------- 256-element super-blocks

// A decoded super-block: 256 values (unsigned, or signed for IQ4_XS), per
// 32-value chunk a scale vector in the ISA's QSCALE layout, and the 16-group
// vectors applied to Q8_K's bsums: icorr (exact integer correction subtracted
// from the integer sum) and mins (scaled by dmin, subtracted in float).
typedef struct {
	int8_t a[256] __attribute__((aligned(32)));
	__m256i sc[8];
	__m256i icorr, mins;
	float d, dmin;
} QFN(kblk);

QINLINE void QFN(k4scales)(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
	#pragma GCC unroll 8
	for (int j = 0; j < 4; j++) {
		sc[j] = s[j] & 63;
		mn[j] = s[j + 4] & 63;
		sc[j + 4] = (s[j + 8] & 15) | ((s[j] >> 6) << 4);
		mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
	}
}

QINLINE void QFN(deck)(int T, const uint8_t *b, QFN(kblk) *k) {
	const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
	int16_t g16[16];
	switch (T) {
	case T_Q2_K: {
		k->d = QFN(h2f)(b + 80);
		k->dmin = QFN(h2f)(b + 82);
		#pragma GCC unroll 8
		for (int h = 0; h < 2; h++) {
			__m256i q = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * h));
			#pragma GCC unroll 8
			for (int s = 0; s < 4; s++)
				_mm256_store_si256((__m256i *)(k->a + 128 * h + 32 * s),
					_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3));
		}
		#pragma GCC unroll 8
		for (int c = 0; c < 8; c++)
			k->sc[c] = QSCALE(b[2 * c] & 15, b[2 * c + 1] & 15);
		for (int g = 0; g < 16; g++)
			g16[g] = b[g] >> 4;
		k->mins = _mm256_loadu_si256((const __m256i *)g16);
		k->icorr = _mm256_setzero_si256();
		break;
	}
	case T_Q3_K: {
		// values stored as q+4 (0..7); the -4 goes into icorr.
		k->d = QFN(h2f)(b + 108);
		k->dmin = 0;
		const __m256i hm = _mm256_loadu_si256((const __m256i *)b);
		#pragma GCC unroll 8
		for (int h = 0; h < 2; h++) {
			__m256i q = _mm256_loadu_si256((const __m256i *)(b + 32 + 32 * h));
			#pragma GCC unroll 8
			for (int s = 0; s < 4; s++) {
				const int bit = 4 * h + s;
				__m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, bit), _mm256_set1_epi8(1));
				__m256i v = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3),
					_mm256_slli_epi16(hb, 2));
				_mm256_store_si256((__m256i *)(k->a + 128 * h + 32 * s), v);
			}
		}
		const uint8_t *s = b + 96;
		for (int g = 0; g < 16; g++) {
			int v = (g < 8 ? (s[g] & 15) : (s[g - 8] >> 4)) | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
			g16[g] = (int16_t)(v - 32);
		}
		#pragma GCC unroll 8
		for (int c = 0; c < 8; c++)
			k->sc[c] = QSCALE(g16[2 * c], g16[2 * c + 1]);
		for (int g = 0; g < 16; g++)
			g16[g] = (int16_t)(g16[g] * 4);
		k->icorr = _mm256_loadu_si256((const __m256i *)g16);
		k->mins = _mm256_setzero_si256();
		break;
	}
	case T_Q4_K:
	case T_Q5_K: {
		k->d = QFN(h2f)(b);
		k->dmin = QFN(h2f)(b + 2);
		uint8_t sc[8], mn[8];
		QFN(k4scales)(b + 4, sc, mn);
		const uint8_t *qs = b + (T == T_Q5_K ? 48 : 16);
		const __m256i qh = T == T_Q5_K ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
		#pragma GCC unroll 8
		for (int c = 0; c < 4; c++) {
			__m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
			__m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
			if (T == T_Q5_K) {
				const __m256i one = _mm256_set1_epi8(1);
				lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
				hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
			}
			_mm256_store_si256((__m256i *)(k->a + 64 * c), lo);
			_mm256_store_si256((__m256i *)(k->a + 64 * c + 32), hi);
		}
		#pragma GCC unroll 8
		for (int c = 0; c < 8; c++)
			k->sc[c] = QSCALE(sc[c], sc[c]);
		for (int g = 0; g < 16; g++)
			g16[g] = mn[g / 2];
		k->mins = _mm256_loadu_si256((const __m256i *)g16);
		k->icorr = _mm256_setzero_si256();
		break;
	}
	case T_Q6_K: {
		// values stored as q+32 (0..63); the -32 goes into icorr.
		k->d = QFN(h2f)(b + 208);
		k->dmin = 0;
		#pragma GCC unroll 8
		for (int h = 0; h < 2; h++) {
			__m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
			__m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
			__m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
			__m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
			__m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
				_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
			__m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
				_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
			__m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
				_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
			_mm256_store_si256((__m256i *)(k->a + 128 * h), v0);
			_mm256_store_si256((__m256i *)(k->a + 128 * h + 32), v1);
			_mm256_store_si256((__m256i *)(k->a + 128 * h + 64), v2);
			_mm256_store_si256((__m256i *)(k->a + 128 * h + 96), v3);
		}
		const int8_t *s = (const int8_t *)(b + 192);
		#pragma GCC unroll 8
		for (int c = 0; c < 8; c++)
			k->sc[c] = QSCALE(s[2 * c], s[2 * c + 1]);
		for (int g = 0; g < 16; g++)
			g16[g] = (int16_t)(s[g] * 32);
		k->icorr = _mm256_loadu_si256((const __m256i *)g16);
		k->mins = _mm256_setzero_si256();
		break;
	}
	case T_IQ4_XS: {
		k->d = QFN(h2f)(b);
		k->dmin = 0;
		uint16_t h;
		memcpy(&h, b + 2, 2);
		const __m256i lut = QFN(iq4lut)(), m4 = _mm256_set1_epi8(0x0f);
		// IQ4_XS's pair order (step_iq4xs): per chunk pair (c, c+1), values
		// 0..15 of both, then 16..31 of both; sc[c] = sc[c+1] holds chunk
		// c's scale in the low half and c+1's in the high half
		#pragma GCC unroll 4
		for (int c = 0; c < 8; c += 2) {
			const __m256i v = _mm256_loadu_si256((const __m256i *)(b + 8 + 16 * c));
			_mm256_store_si256((__m256i *)(k->a + 32 * c), _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4)));
			_mm256_store_si256((__m256i *)(k->a + 32 * c + 32), _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4)));
			const int l0 = ((b[4 + c / 2] & 15) | (((h >> (2 * c)) & 3) << 4)) - 32;
			const int l1 = ((b[4 + c / 2] >> 4) | (((h >> (2 * c + 2)) & 3) << 4)) - 32;
			k->sc[c] = k->sc[c + 1] = QSCALE(l0, l1);
		}
		k->icorr = _mm256_setzero_si256();
		k->mins = _mm256_setzero_si256();
		break;
	}
	}
}

QINLINE int QFN(kcorr)(int T) { return T == T_Q3_K || T == T_Q6_K; }
QINLINE int QFN(kmin)(int T) { return T == T_Q2_K || T == T_Q4_K || T == T_Q5_K; }

QINLINE void QFN(tilek)(int T, int RM, int RN, const uint8_t *w, size_t wrb, const uint8_t *x,
	size_t xrb, int nb, float *y, size_t ldy) {
	const int bs = QFN(bsize)(T);
	__m256 acc[4][4], accm[4][4];
	QFN(kblk) kb[4];
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			acc[i][j] = _mm256_setzero_ps();
			accm[i][j] = _mm256_setzero_ps();
		}
	for (int b = 0; b < nb; b++) {
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wb = w + i * wrb + (size_t)b * bs;
			const uint8_t *pf = wb + RM * wrb; // same block, next tile's rows
			_mm_prefetch((const char *)pf, _MM_HINT_T0);
			_mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
			_mm_prefetch((const char *)(pf + 128), _MM_HINT_T0);
			_mm_prefetch((const char *)(pf + bs - 1), _MM_HINT_T0);
			QFN(deck)(T, wb, &kb[i]);
		}
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const uint8_t *yb = x + j * xrb + (size_t)b * 292;
			float dy;
			memcpy(&dy, yb, 4);
			const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				__m256i s = _mm256_setzero_si256();
				if (T == T_IQ4_XS) { // the pair order: slots c, c+1 hold values 0..15, then 16..31, of a pair
					#pragma GCC unroll 4
					for (int c = 0; c < 8; c += 2) {
						__m256i ylo, yhi;
						QFN(iq4xs_ypair)(yb, c, &ylo, &yhi);
						s = _mm256_add_epi32(s, QSDOT_S(_mm256_load_si256((const __m256i *)(kb[i].a + 32 * c)), ylo, kb[i].sc[c]));
						s = _mm256_add_epi32(s, QSDOT_S(_mm256_load_si256((const __m256i *)(kb[i].a + 32 * c + 32)), yhi, kb[i].sc[c]));
					}
				} else {
					#pragma GCC unroll 8
					for (int c = 0; c < 8; c++) {
						const __m256i a = _mm256_load_si256((const __m256i *)(kb[i].a + 32 * c));
						const __m256i v = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
						s = _mm256_add_epi32(s, QSDOT_U(a, v, kb[i].sc[c]));
					}
				}
				if (QFN(kcorr)(T))
					s = _mm256_sub_epi32(s, _mm256_madd_epi16(bsums, kb[i].icorr));
				acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(kb[i].d * dy), _mm256_cvtepi32_ps(s), acc[i][j]);
				if (QFN(kmin)(T))
					accm[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(kb[i].dmin * dy),
						_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, kb[i].mins)), accm[i][j]);
			}
		}
	}
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
			y[j * ldy + i] = QFN(hsum)(acc[i][j]) - QFN(hsum)(accm[i][j]);
}

// tilew: the index in cw (tile widths, decreasing, the last 1) of the
// widest tile that fits in the activation rows [j, j1) — the batch
// drivers' packing and compute loops must cut a group into the same tiles.
QINLINE int QFN(tilew)(const int *cw, int j, int j1) {
	int k = 0;
	while (j + cw[k] > j1)
		k++;
	return k;
}

#include "qkern_fused.h"
#ifdef QK_BATCH_WIDE
#include "qkern_batch.h"
#include "qkern_batchk.h"
#endif
#include "qkern_batch4.h"

// ---------------------------------------------------------------- drivers

// One function per tile shape (RM × RN), so the accumulators stay in
// registers; each switches on the type to a fully specialised loop.
#define QCASE(KIND, TT, RM, RN) \
	case TT: QFN(KIND)(TT, RM, RN, w, wrb, x, xrb, nb, y, ldy); break;
#define QTILE32_FN(RM, RN)                                                                  \
	static __attribute__((noinline)) void QCAT(QFN(t32), RM##x##RN)(int T, const uint8_t *w, \
		size_t wrb, const uint8_t *x, size_t xrb, int nb, float *y, size_t ldy) {           \
		switch (T) {                                                                        \
			QCASE(tile32, T_Q4_0, RM, RN)                                                   \
			QCASE(tile32, T_Q4_1, RM, RN)                                                   \
			QCASE(tile32, T_Q5_0, RM, RN)                                                   \
			QCASE(tile32, T_Q5_1, RM, RN)                                                   \
			QCASE(tile32, T_Q8_0, RM, RN)                                                   \
			QCASE(tile32, T_IQ4_NL, RM, RN)                                                 \
		}                                                                                   \
	}
#define QTILEK_FN(RM, RN)                                                                   \
	static __attribute__((noinline)) void QCAT(QFN(tk), RM##x##RN)(int T, const uint8_t *w,  \
		size_t wrb, const uint8_t *x, size_t xrb, int nb, float *y, size_t ldy) {           \
		switch (T) {                                                                        \
			QCASE(tilek, T_Q2_K, RM, RN)                                                    \
			QCASE(tilek, T_Q3_K, RM, RN)                                                    \
			QCASE(tilek, T_Q4_K, RM, RN)                                                    \
			QCASE(tilek, T_Q5_K, RM, RN)                                                    \
			QCASE(tilek, T_Q6_K, RM, RN)                                                    \
			QCASE(tilek, T_IQ4_XS, RM, RN)                                                  \
		}                                                                                   \
	}

QTILE32_FN(2, 1)
QTILE32_FN(1, 1)
QTILE32_FN(2, 4)
QTILE32_FN(1, 4)
QTILEK_FN(1, 1)
QTILEK_FN(1, 4)

typedef void (*QFN(tilefn))(int, const uint8_t *, size_t, const uint8_t *, size_t, int, float *, size_t);

// Y[j*ldy + r] for j < n, r0 <= r < r1. w points at weight row 0 (rows of
// wrb bytes), x at n prepared activation rows of xrb bytes.
void QFN(mica_qmul)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb, int n, int nb,
	float *y, size_t ldy, int r0, int r1) {
	const int isk = T == T_Q2_K || T == T_Q3_K || T == T_Q4_K || T == T_Q5_K || T == T_Q6_K || T == T_IQ4_XS;
	// matrix-vector: the fused kernels (qkern_fused.h), rows from separate
	// sequential streams; each row's values equal a tile's
	if (n == 1) {
		if (isk)
			QFN(mv_kfused)(T, w, wrb, x, nb, y, r0, r1);
		else
			QFN(mv32)(T, w, wrb, x, nb, y, r0, r1);
		return;
	}
	// batches: the dedicated kernels (qkern_batch*.h) where there is one;
	// each gives the same values as the generic tiles below (the 32-element
	// types but Q8_0: the block-pair kernel)
	if (T != T_Q8_0 && !isk && QFN(batch_q4p)(T, w, wrb, x, xrb, n, nb, y, ldy, r0, r1))
		return;
#ifdef QK_BATCH_WIDE
	if (isk && QFN(batch_k)(T, w, wrb, x, xrb, n, nb, y, ldy, r0, r1))
		return;
	if (T == T_Q8_0 && QFN(batch_q8_0)(w, wrb, x, xrb, n, nb, y, ldy, r0, r1))
		return;
#endif
	// row tile, column tile, and their single-row / single-column edges
	QFN(tilefn) f_main, f_rowedge, f_coledge, f_one;
	int RM, RN;
	if (isk) {
		RM = 1; RN = 4;
		f_main = QCAT(QFN(tk), 1x4); f_rowedge = f_main;
		f_coledge = QCAT(QFN(tk), 1x1); f_one = f_coledge;
	} else {
		RM = 2; RN = 4;
		f_main = QCAT(QFN(t32), 2x4); f_rowedge = QCAT(QFN(t32), 1x4);
		f_coledge = QCAT(QFN(t32), 2x1); f_one = QCAT(QFN(t32), 1x1);
	}
	// Activation rows in blocks of about 128 KiB (a multiple of RN) so a
	// block stays in L2 while all weight rows stream past it.
	int jb = (int)((128 << 10) / xrb) / RN * RN;
	if (jb < RN)
		jb = RN;
	for (int j0 = 0; j0 < n; j0 += jb) {
		const int j1 = n - j0 < jb ? n : j0 + jb;
		int r = r0;
		for (; r + RM <= r1; r += RM) {
			int j = j0;
			for (; j + RN <= j1; j += RN)
				f_main(T, w + (size_t)r * wrb, wrb, x + (size_t)j * xrb, xrb, nb, y + (size_t)j * ldy + r, ldy);
			for (; j < j1; j++)
				f_coledge(T, w + (size_t)r * wrb, wrb, x + (size_t)j * xrb, xrb, nb, y + (size_t)j * ldy + r, ldy);
		}
		for (; r < r1; r++) {
			int j = j0;
			for (; j + RN <= j1; j += RN)
				f_rowedge(T, w + (size_t)r * wrb, wrb, x + (size_t)j * xrb, xrb, nb, y + (size_t)j * ldy + r, ldy);
			for (; j < j1; j++)
				f_one(T, w + (size_t)r * wrb, wrb, x + (size_t)j * xrb, xrb, nb, y + (size_t)j * ldy + r, ldy);
		}
	}
}
