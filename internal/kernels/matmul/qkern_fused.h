// Fused matrix-vector kernels (n = 1) for every quantized type, part of
// qkern.h (compiled once per instruction set through it; uses its macros).
//
// Row streams: a call's row range [r0, r1) is cut into S equal runs of
// consecutive rows (of mica_stream_len rows, streams.h: no two runs start a
// multiple of 4 KiB apart; the rows left over are done alone); the kernels
// take one row from each run at a time (rows r0+k, r0+len+k, ...) and keep
// one accumulator chain per row. Each run is read strictly sequentially, so
// the hardware and software prefetchers see S clean streams, and the S
// independent multiply-add chains hide the latency that bounds one row
// (interleaving S adjacent rows instead was up to 2x slower from DRAM on
// Zen 3). A row's operations never depend on its stream partners, so every
// row split (thread count) and every n gives identical values.

#include "streams.h"

// ---------------------------------------------------------------- fused matrix-vector K-quants

// For n = 1 the super-block types skip the decoded copy: each super-block
// is unpacked in registers and multiplied at once (step_*: one super-block
// of one row into its accumulators).

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

// 16-bit lanes shifted left by k (right by -k when k < 0); k constant. The
// K-quant steps use it to move one bit of each byte to another position
// before a byte mask (the bit stays within its byte).
QINLINE __m256i QFN(shl16)(__m256i v, int k) {
	return k > 0 ? _mm256_slli_epi16(v, k) : k < 0 ? _mm256_srli_epi16(v, -k) : v;
}

// Q4_K (five = 0) and Q5_K (five = 1, fifth bit from qh).
// pf is the prefetch distance in bytes (the row length: the same block of
// the next row).
QINLINE void QFN(step_q45k)(int five, const uint8_t *blk, size_t pf, const uint8_t *yb, __m256 *pacc, __m256 *paccm) {
	const __m256i b4 = _mm256_set1_epi8(0x10);
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 128), _MM_HINT_T0);
	if (five)
		_mm_prefetch((const char *)(blk + pf + 175), _MM_HINT_T0);
	const uint8_t *qs = blk + (five ? 48 : 16);
	const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
	float dy;
	memcpy(&dy, yb, 4);
	// the 6-bit scales (bytes 0..7) and mins (bytes 8..15) of q4k_scales
	uint32_t w0, w1, w2;
	memcpy(&w0, blk + 4, 4);
	memcpy(&w1, blk + 8, 4);
	memcpy(&w2, blk + 12, 4);
	const uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
	const __m128i raw = _mm_setr_epi32((int)(w0 & lo6), (int)((w2 & lo4) | (((w0 >> 6) & lo2) << 4)),
		(int)(w1 & lo6), (int)(((w2 >> 4) & lo4) | (((w1 >> 6) & lo2) << 4)));
	// mins per 16-group: mn[g/2]
	const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(raw,
		_mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
	const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
	const __m256i scv = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(raw));
	__m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
		__m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
		if (five) { // bits 2c and 2c+1 of each qh byte moved to bit 4: one shift, one mask
			lo = _mm256_or_si256(lo, _mm256_and_si256(QFN(shl16)(qh, 4 - 2 * c), b4));
			hi = _mm256_or_si256(hi, _mm256_and_si256(QFN(shl16)(qh, 3 - 2 * c), b4));
		}
		const __m256i s0 = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c))));
		const __m256i s1 = _mm256_shuffle_epi8(scv, _mm256_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2))));
		const __m256i y0 = _mm256_loadu_si256((const __m256i *)(yb + 4 + 64 * c));
		const __m256i y1 = _mm256_loadu_si256((const __m256i *)(yb + 4 + 64 * c + 32));
		s = _mm256_add_epi32(s, QSDOT_UW(lo, y0, s0));
		s = _mm256_add_epi32(s, QSDOT_UW(hi, y1, s1));
	}
	// (d·d_y, dmin·d_y): both halves converted together, the same IEEE
	// products as scalar ones
	uint32_t hd;
	memcpy(&hd, blk, 4);
	const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)hd)), _mm_set1_ps(dy));
	*pacc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(s), *pacc);
	*paccm = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)),
		_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, mins)), *paccm);
}

// Int16 scales for chunk c (32 values, groups 2c and 2c+1) from 16 int16
// group scales: word c holds the pair; spread it over the two halves (used
// by the batch kernels, qkern_batchk.h).
QINLINE __m256i QFN(pair_scales)(__m256i sc16, int c) {
	const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
		2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
	return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(c)), pick);
}

// The same from scvh, which holds the half with groups 8h..8h+7 (h = c/4) in
// both 128-bit lanes; one byte shuffle spreads group 2c over the low lane
// and 2c+1 over the high lane.
QINLINE __m256i QFN(pair_scales_h)(__m256i scvh, int c) {
	const int t = c % 4;
	return _mm256_shuffle_epi8(scvh, _mm256_set_m128i(_mm_set1_epi16((short)(((4 * t + 3) << 8) | (4 * t + 2))),
		_mm_set1_epi16((short)(((4 * t + 1) << 8) | (4 * t)))));
}

// The 128 values of half h of a Q6_K super-block as stored (q + 32, 0…63):
// v[t] holds values 128h + 32t … 128h + 32t + 31, the low four bits from
// ql and the top two from qh.
QINLINE void QFN(q6k_half)(const uint8_t *blk, int h, __m256i v[4]) {
	const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
	const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
	const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
	const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
	v[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
	v[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(12)), 2));
	v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
	v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
		_mm256_and_si256(_mm256_srli_epi16(qh, 2), _mm256_set1_epi8(0x30)));
}

// Half h of 16 int16 group scales in both lanes.
QINLINE __m256i QFN(scale_half)(__m256i sc16, int h) {
	return h ? _mm256_permute4x64_epi64(sc16, 0xee) : _mm256_permute4x64_epi64(sc16, 0x44);
}

QINLINE void QFN(step_q6k)(const uint8_t *blk, size_t pf, const uint8_t *yb, __m256 *pacc, __m256 *paccm) {
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
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		const __m256i scvh = QFN(scale_half)(sc16, h);
		__m256i v[4];
		QFN(q6k_half)(blk, h, v);
#pragma GCC unroll 4
		for (int t = 0; t < 4; t++) {
			const int c = 4 * h + t;
			const __m256i scw = QFN(pair_scales_h)(scvh, c);
			const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
			s = _mm256_add_epi32(s, QSDOT_UW(v[t], y, scw));
		}
	}
	*pacc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 208) * dy), _mm256_cvtepi32_ps(s), *pacc);
	(void)paccm;
}

QINLINE void QFN(step_q2k)(const uint8_t *blk, size_t pf, const uint8_t *yb, __m256 *pacc, __m256 *paccm) {
	const __m256i m3 = _mm256_set1_epi8(3);
	_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 83), _MM_HINT_T0);
	float dy;
	memcpy(&dy, yb, 4);
	// the 4-bit mins: the high nibbles of bytes 0..15, as int16 lanes
	const __m256i mn16 = _mm256_srli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)blk)), 4);
	const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
	__m256i s = _mm256_setzero_si256();
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * h));
		// the 4-bit scales of groups 8h..8h+7 as bytes, in every 64-bit
		// lane; chunk c's int16 scales (group 2c low lane, 2c+1 high
		// lane) are one byte shuffle of that (zero high bytes)
		uint64_t s8;
		memcpy(&s8, blk + 8 * h, 8);
		const __m256i sch = _mm256_and_si256(_mm256_set1_epi64x((long long)s8), _mm256_set1_epi8(15));
#pragma GCC unroll 4
		for (int t = 0; t < 4; t++) {
			const int c = 4 * h + t;
			const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * t), m3);
			const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
			const __m256i scw = _mm256_shuffle_epi8(sch, _mm256_set_m128i(_mm_set1_epi16((short)(0x8000 | (2 * t + 1))),
				_mm_set1_epi16((short)(0x8000 | (2 * t)))));
			s = _mm256_add_epi32(s, QSDOT_UW(v, y, scw));
		}
	}
	uint32_t hd; // (d, dmin) converted together, as in step_q45k
	memcpy(&hd, blk + 80, 4);
	const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)hd)), _mm_set1_ps(dy));
	*pacc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(s), *pacc);
	*paccm = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)),
		_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, mn16)), *paccm);
}

// A Q3_K super-block's 16 six-bit scales as int16 (−32 applied): low 4
// bits from bytes 96..103 (groups 0..7: low nibbles, 8..15: high nibbles),
// high 2 from 104..107 (group g: bits 2(g/4) of byte 104 + g%4), built as
// two 64-bit words.
QINLINE __m256i QFN(q3k_scales)(const uint8_t *blk) {
	uint64_t w01;
	uint32_t w2;
	memcpy(&w01, blk + 96, 8);
	memcpy(&w2, blk + 104, 4);
	const uint64_t lo4 = 0x0f0f0f0f0f0f0f0fULL, lo2 = 0x0303030303030303ULL;
	const uint64_t h02 = (uint64_t)w2 | (uint64_t)(w2 >> 2) << 32, h46 = (uint64_t)(w2 >> 4) | (uint64_t)(w2 >> 6) << 32;
	const __m128i sb = _mm_set_epi64x((long long)(((w01 >> 4) & lo4) | (h46 & lo2) << 4),
		(long long)((w01 & lo4) | (h02 & lo2) << 4));
	return _mm256_cvtepi8_epi16(_mm_sub_epi8(sb, _mm_set1_epi8(32)));
}

// Q3_K's values 32c .. 32c+31 as stored (q + 4, 0..7): the two low bits from
// q (the 32 bytes at 32 + 32·(c/4), shifted by 2·(c%4)), the third from
// bit c of each byte of hm (the first 32 bytes).
QINLINE __m256i QFN(q3k_chunk)(__m256i hm, __m256i q, int c) {
	// bit c of each byte of hm moved to bit 2 (value 4): one shift and one
	// mask (16-bit shifts keep each byte's bit in its byte)
	const __m256i hb4 = _mm256_and_si256(QFN(shl16)(hm, 2 - c), _mm256_set1_epi8(4));
	return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * (c % 4)), _mm256_set1_epi8(3)), hb4);
}

// An IQ4_XS super-block's 8 six-bit scales as int16 (−32 applied): byte c =
// nibble c of bytes 4..7 | bits 2c, 2c+1 of the 16-bit word at 2, shifted
// to bits 4..5 (bit-spreading on 64 bits).
QINLINE __m128i QFN(iq4xs_scales)(const uint8_t *blk) {
	uint16_t h;
	uint32_t sl;
	memcpy(&h, blk + 2, 2);
	memcpy(&sl, blk + 4, 4);
	uint64_t lo = sl, hi = h;
	lo = (lo | lo << 16) & 0x0000ffff0000ffffULL;
	lo = (lo | lo << 8) & 0x00ff00ff00ff00ffULL;
	lo = (lo | lo << 4) & 0x0f0f0f0f0f0f0f0fULL;
	hi = (hi | hi << 24) & 0x000000ff000000ffULL;
	hi = (hi | hi << 12) & 0x000f000f000f000fULL;
	hi = (hi | hi << 6) & 0x0303030303030303ULL;
	return _mm_cvtepi8_epi16(_mm_sub_epi8(_mm_cvtsi64_si128((long long)(lo | hi << 4)), _mm_set1_epi8(32)));
}

// A Q8_K block's 256 values in IQ4_XS's pair order (iq4xs_ypair for c = 0,
// 2, 4, 6), into ry.
QINLINE void QFN(iq4xs_ry)(const uint8_t *yb, uint8_t *ry) {
	#pragma GCC unroll 4
	for (int c = 0; c < 8; c += 2) {
		__m256i lo, hi;
		QFN(iq4xs_ypair)(yb, c, &lo, &hi);
		_mm256_storeu_si256((__m256i *)(ry + 32 * c), lo);
		_mm256_storeu_si256((__m256i *)(ry + 32 * c + 32), hi);
	}
}

// The int16 scales of chunks c (low half) and c+1 (high half) from scv
// (the 8 chunk scales as int16, in both halves).
QINLINE __m256i QFN(iq4xs_pairscale)(__m256i scv, int c) {
	return _mm256_shuffle_epi8(scv, _mm256_set_m128i(_mm_set1_epi16((short)(((2 * c + 3) << 8) | (2 * c + 2))),
		_mm_set1_epi16((short)(((2 * c + 1) << 8) | (2 * c)))));
}

QINLINE void QFN(step_q3k)(const uint8_t *blk, size_t pf, const uint8_t *yb, __m256 *pacc, __m256 *paccm) {
	_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 109), _MM_HINT_T0);
	float dy;
	memcpy(&dy, yb, 4);
	const __m256i sc16 = QFN(q3k_scales)(blk);
	const __m256i bsums = _mm256_loadu_si256((const __m256i *)(yb + 260));
	// values are stored q+4 (0..7): subtract 4·Σ scale·bsum
	__m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 2));
	const __m256i hm = _mm256_loadu_si256((const __m256i *)blk);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * h));
		const __m256i scvh = QFN(scale_half)(sc16, h);
#pragma GCC unroll 4
		for (int t = 0; t < 4; t++) {
			const int c = 4 * h + t;
			const __m256i v = QFN(q3k_chunk)(hm, q, c);
			const __m256i y = _mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * c));
			s = _mm256_add_epi32(s, QSDOT_UW(v, y, QFN(pair_scales_h)(scvh, c)));
		}
	}
	*pacc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk + 108) * dy), _mm256_cvtepi32_ps(s), *pacc);
	(void)paccm;
}

// IQ4_XS takes its 32-value chunks in pairs (c, c+1): the pair's 32 code
// bytes are one load, AND gives values 0..15 of both chunks (c's in the
// low half, c+1's in the high), shift+AND values 16..31, against the
// activations rearranged the same way (ylo, yhi: iq4xs_ry), each half
// scaled by its chunk's scale. So int32 lanes 0..3 sum chunk c's products
// and 4..7 chunk c+1's (exact integers; the tiles sum them the same way).
// The byte products are |y|·(v·sgn y) (vpabsb on the activations, vpsignb
// on the table values): equal to the sign trick's |v|·(y·sgn v) (table
// values >= -127, so the negation is exact); a |y| made once per call
// measured slower (0.86–0.96×), the pair order 1.1–1.4× the chunk order.
// ry: the super-block's activations rearranged (iq4xs_ry), or NULL (made
// here from yb).
QINLINE void QFN(step_iq4xs)(const uint8_t *blk, size_t pf, const uint8_t *yb, const uint8_t *ry, __m256 *pacc,
	__m256 *paccm) {
	const __m256i lut = QFN(iq4lut)(), m4 = _mm256_set1_epi8(0x0f);
	_mm_prefetch((const char *)(blk + pf), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 64), _MM_HINT_T0);
	_mm_prefetch((const char *)(blk + pf + 135), _MM_HINT_T0);
	float dy;
	memcpy(&dy, yb, 4);
	const __m128i l8 = QFN(iq4xs_scales)(blk);
	const __m256i scv = _mm256_set_m128i(l8, l8);
	__m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
	for (int c = 0; c < 8; c += 2) {
		const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 8 + 16 * c));
		const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
		const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
		__m256i ylo, yhi;
		if (ry) {
			ylo = _mm256_load_si256((const __m256i *)(ry + 32 * c));
			yhi = _mm256_load_si256((const __m256i *)(ry + 32 * c + 32));
		} else {
			QFN(iq4xs_ypair)(yb, c, &ylo, &yhi);
		}
		const __m256i scw = QFN(iq4xs_pairscale)(scv, c);
		s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(ylo), _mm256_sign_epi8(lo, ylo)), scw));
		s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(yhi), _mm256_sign_epi8(hi, yhi)), scw));
	}
	*pacc = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(blk) * dy), _mm256_cvtepi32_ps(s), *pacc);
	(void)paccm;
}

// RM rows (one per stream) of a K-quant type: per row the same block
// sequence as one row alone; the rows' independent chains interleave.
// ry: for IQ4_XS the activations in its pair order (iq4xs_ry, 256 bytes
// per super-block), or NULL.
QINLINE void QFN(mvk)(int T, int RM, const uint8_t *const *wr, size_t pf, const uint8_t *x, const uint8_t *ry, int nb,
	float *const *yr) {
	const int bs = QFN(bsize)(T);
	__m256 acc[4], accm[4];
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
		acc[i] = accm[i] = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *yb = x + (size_t)b * 292;
		#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			const uint8_t *blk = wr[i] + (size_t)b * bs;
			switch (T) {
			case T_Q4_K: QFN(step_q45k)(0, blk, pf, yb, &acc[i], &accm[i]); break;
			case T_Q5_K: QFN(step_q45k)(1, blk, pf, yb, &acc[i], &accm[i]); break;
			case T_Q6_K: QFN(step_q6k)(blk, pf, yb, &acc[i], &accm[i]); break;
			case T_Q2_K: QFN(step_q2k)(blk, pf, yb, &acc[i], &accm[i]); break;
			case T_Q3_K: QFN(step_q3k)(blk, pf, yb, &acc[i], &accm[i]); break;
			default: QFN(step_iq4xs)(blk, pf, yb, ry ? ry + (size_t)b * 256 : NULL, &acc[i], &accm[i]); break;
			}
		}
	}
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
		*yr[i] = QFN(kmin)(T) ? QFN(hsum)(acc[i]) - QFN(hsum)(accm[i]) : QFN(hsum)(acc[i]);
}

#ifndef QMV_KS
#define QMV_KS 2
#endif

// Row k of each of S streams of len consecutive rows from r0 (pass r0 + k):
// weight rows and outputs r0 + i·len + k, i < S (S ≤ 4).
QINLINE void QFN(stream_rows)(int S, const uint8_t *w, size_t wrb, float *y, int r, int len, const uint8_t **wr,
	float **yr) {
	for (int i = 0; i < S; i++) {
		wr[i] = w + (size_t)(r + i * len) * wrb;
		yr[i] = y + r + i * len;
	}
}

// Streams per K-quant type, measured one thread with the weights in L2:
// QMV_KS (2) for Q4_K–Q6_K (Q6_K +5% over 1, Q4_K level; 4 streams lost 8%
// on Q4_K, 3 lost 4-6% on Q4_K/Q5_K), 3 for Q2_K, Q3_K and IQ4_XS (+2-6%
// over 2; 2026-11-27 night).
QINLINE int QFN(kstreams)(int T) { return T == T_Q2_K || T == T_Q3_K || T == T_IQ4_XS ? 3 : QMV_KS; }

// IQ4_XS: the activations of at most this many super-blocks are
// rearranged once per call (on the stack, 16 KiB).
enum { QMV_MAXRY = 64 };

// The rows in kstreams(T) streams, the rest one at a time; each row
// prefetches the same block of the next row of its stream (pf = wrb).
QINLINE void QFN(mvk_rows)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, int nb, float *y, int r0, int r1) {
	const int S = QFN(kstreams)(T);
	// IQ4_XS: the activations rearranged once per call (rows of up to
	// QMV_MAXRY super-blocks; longer ones per super-block and row)
	uint8_t rybuf[T == T_IQ4_XS ? QMV_MAXRY * 256 : 32] __attribute__((aligned(32)));
	const uint8_t *ry = NULL;
	if (T == T_IQ4_XS && nb <= QMV_MAXRY) {
		for (int b = 0; b < nb; b++)
			QFN(iq4xs_ry)(x + (size_t)b * 292, rybuf + (size_t)b * 256);
		ry = rybuf;
	}
	const int len = mica_stream_len(r1 - r0, S, wrb);
	for (int k = 0; k < len; k++) {
		const uint8_t *wr[4];
		float *yr[4];
		QFN(stream_rows)(S, w, wrb, y, r0 + k, len, wr, yr);
		QFN(mvk)(T, S, wr, wrb, x, ry, nb, yr);
	}
	for (int r = r0 + S * len; r < r1; r++) {
		const uint8_t *wr = w + (size_t)r * wrb;
		float *yr = y + r;
		QFN(mvk)(T, 1, &wr, wrb, x, ry, nb, &yr);
	}
}

static __attribute__((noinline)) void QFN(mv_kfused)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, int nb,
	float *y, int r0, int r1) {
	switch (T) {
	case T_Q4_K: QFN(mvk_rows)(T_Q4_K, w, wrb, x, nb, y, r0, r1); break;
	case T_Q5_K: QFN(mvk_rows)(T_Q5_K, w, wrb, x, nb, y, r0, r1); break;
	case T_Q6_K: QFN(mvk_rows)(T_Q6_K, w, wrb, x, nb, y, r0, r1); break;
	case T_Q2_K: QFN(mvk_rows)(T_Q2_K, w, wrb, x, nb, y, r0, r1); break;
	case T_Q3_K: QFN(mvk_rows)(T_Q3_K, w, wrb, x, nb, y, r0, r1); break;
	default: QFN(mvk_rows)(T_IQ4_XS, w, wrb, x, nb, y, r0, r1); break;
	}
}

// ---------------------------------------------------------------- fused matrix-vector Q8_0 and Q4_0

// For n = 1, 32-element block types: 8-lane float accumulators per row,
// reduced once at the end. Q8_0 takes blocks in pairs so a row's two weight
// scales are converted and multiplied by the activation scales in one
// vector operation. The per-row sequence does not depend on how many rows
// a call does together, so every row split gives identical results.

// Software prefetch distance of each row stream, in bytes (measured on
// 262144×640 Q8_0: 2 KiB ≈ 4 KiB > 1 KiB, 8 KiB; none: much slower;
// prefetcht1 or prefetchnta no better).
#ifndef QMV_PF
#define QMV_PF 2048
#endif
#ifndef QMV_RM8
#define QMV_RM8 4
#endif
_Static_assert(QMV_RM8 >= 1 && QMV_RM8 <= 4, "the Q8_0/Q4_0 row kernels hold at most 4 rows");

// Block scales of RM rows (one per stream), converted together: the F16
// value at byte offset off of each row wr[i] in bits 16i.. of the result
// (missing rows 0). The empty asm keeps the combination in general
// registers (the vector ALUs are the busy ones).
QINLINE uint64_t QFN(hrows)(int RM, const uint8_t *const *wr, size_t off) {
	uint64_t h = 0;
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++) {
		uint64_t v = QFN(ld16)(wr[i] + off);
		__asm__("" : "+r"(v));
		h |= v << (16 * i);
	}
	return h;
}

// Two blocks of RM rows: lane i = (F16 at off of row i)·dd[i], lane 4+i =
// (F16 at off+bs of row i)·dd[4+i]: the same IEEE products as scalar ones.
QINLINE __m256 QFN(rowscale2)(int RM, const uint8_t *const *wr, size_t off, size_t bs, __m256 dd) {
	const __m128i h = _mm_set_epi64x((long long)QFN(hrows)(RM, wr, off + bs), (long long)QFN(hrows)(RM, wr, off));
	return _mm256_mul_ps(_mm256_cvtph_ps(h), dd);
}

// One block: lane i = (F16 at off of row i)·dy.
QINLINE __m128 QFN(rowscale1)(int RM, const uint8_t *const *wr, size_t off, float dy) {
	return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)QFN(hrows)(RM, wr, off))), _mm_set1_ps(dy));
}

// dw (two halves at p and p+stride) times the activation scales dy2.
QINLINE __m128 QFN(scale2)(const uint8_t *p, size_t stride, __m128 dy2) {
	const uint32_t h = (uint32_t)QFN(ld16)(p) | (uint32_t)QFN(ld16)(p + stride) << 16;
	return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h)), dy2);
}

// Q8_0: RM rows at a time, each with its own 8-lane accumulator updated
// block by block, as in the tile kernels (tile32), so each output is the
// same float sequence whatever n is or how many rows go together. The RM
// rows come from RM separate sequential streams (row wr[i] + k of stream
// i), so the weights are still read strictly sequentially per stream (with
// adjacent rows interleaved the hardware prefetcher kept up much worse)
// while the RM independent multiply-add chains hide the latency that bounds
// one row. Every 64-byte line ahead is software-prefetched.
// dyb: the activation scales as floats (NULL: converted here, the same values).
QINLINE void QFN(mv_q8_0)(int RM, const uint8_t *const *wr, const uint8_t *x, const float *dyb, int nb, float *const *yr) {
	__m256 acc[4];
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
		acc[i] = _mm256_setzero_ps();
	const __m256i idx1 = _mm256_set1_epi32(1);
	int b = 0;
	for (; b + 2 <= nb; b += 2) {
		const uint8_t *xa = x + (size_t)b * 34;
		const __m256i ya = _mm256_loadu_si256((const __m256i *)(xa + 2));
		const __m256i yb = _mm256_loadu_si256((const __m256i *)(xa + 36));
		const __m128 dy2 = dyb ? _mm_castpd_ps(_mm_load_sd((const double *)(dyb + b)))
			: _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)QFN(ld16)(xa) | (uint32_t)QFN(ld16)(xa + 34) << 16)));
		#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = wr[i] + (size_t)b * 34;
			_mm_prefetch((const char *)(wa + QMV_PF), _MM_HINT_T0);
			_mm_prefetch((const char *)(wa + QMV_PF + 64), _MM_HINT_T0);
			const __m128 s = QFN(scale2)(wa, 34, dy2);
			const __m256 sa = _mm256_broadcastss_ps(s);
			const __m256 sb = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), idx1);
			const __m256i qa = _mm256_loadu_si256((const __m256i *)(wa + 2));
			const __m256i qb = _mm256_loadu_si256((const __m256i *)(wa + 36));
			acc[i] = _mm256_fmadd_ps(sa, _mm256_cvtepi32_ps(QDOT_S(qa, ya)), acc[i]);
			acc[i] = _mm256_fmadd_ps(sb, _mm256_cvtepi32_ps(QDOT_S(qb, yb)), acc[i]);
		}
	}
	if (b < nb) {
		const uint8_t *xa = x + (size_t)b * 34;
		const __m256i ya = _mm256_loadu_si256((const __m256i *)(xa + 2));
		const float dy = QFN(h2f)(xa);
		#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = wr[i] + (size_t)b * 34;
			const __m256i qa = _mm256_loadu_si256((const __m256i *)(wa + 2));
			acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(wa) * dy), _mm256_cvtepi32_ps(QDOT_S(qa, ya)), acc[i]);
		}
	}
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
		*yr[i] = QFN(hsum)(acc[i]);
}

// The 32-element types but Q8_0, in pairs: one 256-bit vector holds block
// A's 16 code bytes (low half) and block B's (high half); AND gives
// elements 0..15 of both, shift+AND elements 16..31, against activations
// rearranged the same way. Lanes 0..3 of the integer sum belong to A, 4..7
// to B (each lane the sum of lanes l and l+4 of the block's own product:
// exact integers), scaled by one multiply-add with dw·dy of each block on
// its lanes. Q4_0 weights are decoded unsigned (q+8) and 8·Σy per lane is
// subtracted (exact); Q5_0 the same with the fifth bits (bits16p) and
// 16·Σy; IQ4_NL's codes go through the table (signed values) and are
// multiplied by |y| (made per pair for all the rows) with y's signs moved
// onto them; Q4_1 and Q5_1 (fifth bits as Q5_0) are unsigned with no
// offset, their min terms m_w·s_y summed in block order beside and added
// after the reduction. The activation side of each pair (rearranged bytes,
// the offset sums, the scales, Q8_1's sums) is computed once per call.
typedef struct {
	__m256i ylo, yhi, yoff;
	float dy[8]; // d_yA, d_yB, then (Q8_1) s_yA, s_yB
} QFN(q4pair);

QINLINE void QFN(q4pairs)(int T, const uint8_t *x, int np, QFN(q4pair) *pp) {
	const int hm = QFN(has_min32)(T), ybs = hm ? 36 : 34, yo = hm ? 4 : 2;
	const __m256i ones8 = _mm256_set1_epi8(1);
	for (int k = 0; k < np; k++) {
		const uint8_t *xa = x + (size_t)k * 2 * ybs, *xb = xa + ybs;
		const __m256i ylo = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(xb + yo)), _mm_loadu_si128((const __m128i *)(xa + yo)));
		const __m256i yhi = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(xb + yo + 16)), _mm_loadu_si128((const __m128i *)(xa + yo + 16)));
		pp[k].ylo = ylo;
		pp[k].yhi = yhi;
		pp[k].yoff = T == T_Q4_0 || T == T_Q5_0 ? _mm256_slli_epi32(QDOT_U2(ones8, ylo, ones8, yhi), T == T_Q5_0 ? 4 : 3)
			: _mm256_setzero_si256();
		_mm_storeu_ps(pp[k].dy, _mm_cvtph_ps(_mm_setr_epi16((short)QFN(ld16)(xa), (short)QFN(ld16)(xb),
			(short)(hm ? QFN(ld16)(xa + 2) : 0), (short)(hm ? QFN(ld16)(xb + 2) : 0), 0, 0, 0, 0)));
	}
}

// Per pair, the RM rows' block scales (and mins) are converted and
// multiplied by the activation scales (sums) together (rowscale2: rows in
// lanes 0..3 for A, 4..7 for B); row i's scale vector (A in lanes 0..3, B
// in 4..7) is one in-lane permute of that. A row's two 16-byte code halves
// come from two 32-byte loads and a blend (no lane-crossing insert). The
// min sums of the RM rows share one vector (lane i = row i). Q4_0: 13-15% less time per
// block than per-row scale conversions and inserts, on one Zen 3 core;
// IQ4_NL, Q5_0 and Q5_1 (per-block lanes before) 10-26% less. All but Q4_0
// end with hsum + their min sum (0 for Q5_0 and IQ4_NL), as their tiles
// (a −0 sum comes out +0).
QINLINE void QFN(mv_q4p)(int T, int RM, const uint8_t *const *wr, const uint8_t *x, const QFN(q4pair) *pp, int nb,
	float *const *yr) {
	const int hm = QFN(has_min32)(T), ybs = hm ? 36 : 34, yo = hm ? 4 : 2;
	const int five = T == T_Q5_0 || T == T_Q5_1;
	const int bs = QFN(bsize)(T), qo = bs - 16; // block bytes, codes' offset
	__m256 acc[4];
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
		acc[i] = _mm256_setzero_ps();
	__m128 am = _mm_setzero_ps(); // lane i: row i's sum of m_w·s_y (Q4_1, Q5_1)
	const __m256i m4 = _mm256_set1_epi8(0x0f), ones8 = _mm256_set1_epi8(1);
	const __m256i half = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
	const __m256i lut = QFN(iq4lut)();
	int b = 0;
	for (; b + 2 <= nb; b += 2) {
		QFN(q4pair) tmp;
		const QFN(q4pair) *q = pp ? pp + b / 2 : &tmp;
		if (!pp) { // rows too long for the precomputed pairs: the same values, made here
			QFN(q4pairs)(T, x + (size_t)b * ybs, 1, &tmp);
		}
		const __m256i ylo = q->ylo, yhi = q->yhi, yoff = q->yoff;
		const __m256i aylo = _mm256_abs_epi8(ylo), ayhi = _mm256_abs_epi8(yhi); // (IQ4_NL)
		const __m256 dys = _mm256_castps128_ps256(_mm_loadu_ps(q->dy));
		const __m256 s = QFN(rowscale2)(RM, wr, (size_t)b * bs, bs, _mm256_permutevar8x32_ps(dys, half));
		if (hm) { // m_w·s_y of the RM rows, A's in lanes 0..3, B's in 4..7, added A then B
			const __m256 t = QFN(rowscale2)(RM, wr, (size_t)b * bs + 2, bs,
				_mm256_permutevar8x32_ps(dys, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3)));
			am = _mm_add_ps(_mm_add_ps(am, _mm256_castps256_ps128(t)), _mm256_extractf128_ps(t, 1));
		}
		#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = wr[i] + (size_t)b * bs;
			_mm_prefetch((const char *)(wa + QMV_PF), _MM_HINT_T0);
			const __m256 sv = _mm256_permute_ps(s, 0x55 * i); // lane i of each half
			const __m256i v = _mm256_blend_epi32(_mm256_loadu_si256((const __m256i *)(wa + qo)),
				_mm256_loadu_si256((const __m256i *)(wa + bs + qo - 16)), 0xf0);
			__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			if (five) {
				__m256i l5, h5;
				QFN(bits16p)(T, wa, &l5, &h5);
				lo = _mm256_or_si256(lo, l5);
				hi = _mm256_or_si256(hi, h5);
			}
			const __m256i p = T == T_IQ4_NL ? _mm256_add_epi32(QDOT_A(aylo, _mm256_shuffle_epi8(lut, lo), ylo),
								  QDOT_A(ayhi, _mm256_shuffle_epi8(lut, hi), yhi))
				: hm ? QDOT_U2(lo, ylo, hi, yhi) : _mm256_sub_epi32(QDOT_U2(lo, ylo, hi, yhi), yoff);
			acc[i] = _mm256_fmadd_ps(sv, _mm256_cvtepi32_ps(p), acc[i]);
		}
	}
	float sc[4];
	if (b < nb) { // an odd last block alone, over all eight lanes
		const uint8_t *xa = x + (size_t)b * ybs;
		const __m256i yq = _mm256_loadu_si256((const __m256i *)(xa + yo));
		const __m256i yoff = _mm256_slli_epi32(QDOT_U(ones8, yq), T == T_Q5_0 ? 4 : 3);
		_mm_storeu_ps(sc, QFN(rowscale1)(RM, wr, (size_t)b * bs, QFN(h2f)(xa)));
		if (hm)
			am = _mm_add_ps(am, QFN(rowscale1)(RM, wr, (size_t)b * bs + 2, QFN(h2f)(xa + 2)));
		#pragma GCC unroll 4
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = wr[i] + (size_t)b * bs;
			float d, m;
			const __m256i c = QFN(dec32)(T == T_IQ4_NL ? T_Q4_0 : T, wa, &d, &m); // IQ4_NL: codes, then the table
			const __m256i p = T == T_IQ4_NL ? QDOT_S(_mm256_shuffle_epi8(lut, c), yq)
				: hm ? QDOT_U(c, yq) : _mm256_sub_epi32(QDOT_U(c, yq), yoff);
			acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(sc[i]), _mm256_cvtepi32_ps(p), acc[i]);
		}
	}
	float ams[4];
	_mm_storeu_ps(ams, am);
	#pragma GCC unroll 4
	for (int i = 0; i < RM; i++)
		*yr[i] = T == T_Q4_0 ? QFN(hsum)(acc[i]) : QFN(hsum)(acc[i]) + ams[i];
}

// The pair types: the activation side of at most this many block pairs is
// precomputed (on the stack, 20 KiB); longer rows compute it per pair.
enum { QMV_MAXPAIRS = 160 };
// Q8_0: the activation scales of at most this many blocks are converted
// once (on the stack); longer rows convert them per row.
enum { QMV_MAXDY = 1024 };

// The pair types: four row streams, then the rows left over alone.
QINLINE void QFN(mv_q4p_rows)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, int nb, float *y, int r0, int r1) {
	QFN(q4pair) buf[QMV_MAXPAIRS];
	QFN(q4pair) *pp = nb / 2 <= QMV_MAXPAIRS ? buf : NULL;
	if (pp)
		QFN(q4pairs)(T, x, nb / 2, pp);
	const int len = mica_stream_len(r1 - r0, 4, wrb);
	for (int k = 0; k < len; k++) {
		const uint8_t *wr[4];
		float *yr[4];
		QFN(stream_rows)(4, w, wrb, y, r0 + k, len, wr, yr);
		QFN(mv_q4p)(T, 4, wr, x, pp, nb, yr);
	}
	for (int r = r0 + 4 * len; r < r1; r++) {
		const uint8_t *wr = w + (size_t)r * wrb;
		float *yr = y + r;
		QFN(mv_q4p)(T, 1, &wr, x, pp, nb, &yr);
	}
}

// Every 32-element type, four row streams (Q8_0: QMV_RM8).
static __attribute__((noinline)) void QFN(mv32)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, int nb,
	float *y, int r0, int r1) {
	int r = r0;
	if (T == T_Q8_0) {
		float buf[QMV_MAXDY];
		float *dyb = nb <= QMV_MAXDY ? buf : NULL;
		if (dyb)
			for (int b = 0; b < nb; b++)
				dyb[b] = QFN(h2f)(x + (size_t)b * 34);
		// QMV_RM8 streams of len rows each, then the rest one at a time
		const int len = mica_stream_len(r1 - r0, QMV_RM8, wrb);
		for (int k = 0; k < len; k++) {
			const uint8_t *wr[4];
			float *yr[4];
			QFN(stream_rows)(QMV_RM8, w, wrb, y, r0 + k, len, wr, yr);
			QFN(mv_q8_0)(QMV_RM8, wr, x, dyb, nb, yr);
		}
		for (r = r0 + QMV_RM8 * len; r < r1; r++) {
			const uint8_t *wr = w + (size_t)r * wrb;
			float *yr = y + r;
			QFN(mv_q8_0)(1, &wr, x, dyb, nb, &yr);
		}
		return;
	}
	switch (T) {
	case T_Q4_1: QFN(mv_q4p_rows)(T_Q4_1, w, wrb, x, nb, y, r0, r1); return;
	case T_Q5_0: QFN(mv_q4p_rows)(T_Q5_0, w, wrb, x, nb, y, r0, r1); return;
	case T_Q5_1: QFN(mv_q4p_rows)(T_Q5_1, w, wrb, x, nb, y, r0, r1); return;
	case T_IQ4_NL: QFN(mv_q4p_rows)(T_IQ4_NL, w, wrb, x, nb, y, r0, r1); return;
	default: QFN(mv_q4p_rows)(T_Q4_0, w, wrb, x, nb, y, r0, r1); return;
	}
}
