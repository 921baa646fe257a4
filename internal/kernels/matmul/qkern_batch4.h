// Batch kernel (n > 1) for the 32-element block types but Q8_0 (Q4_0,
// Q5_0, IQ4_NL, Q4_1, Q5_1), part of qkern.h (compiled once per instruction
// set through it; uses its macros).
//
// Per output element the float operations are those of the n = 1 kernel
// mv_q4p: blocks taken in pairs (2k, 2k+1), one multiply-add per pair with
// lanes 0..3 holding block 2k's folded integer lane sums and lanes 4..7
// block 2k+1's, scaled by dw·dy of their block (the same IEEE products); an
// odd last block alone over all eight lanes; then hsum (+ the min sum for
// all but Q4_0: Q4_1's and Q5_1's m_w·s_y in block order, 0 for Q5_0 and
// IQ4_NL, as mv_q4p). So a row's outputs do not depend on n, the tile, or
// the row split. Q5_0's and Q5_1's fifth bits come from bits16p; IQ4_NL's codes go
// through the table and multiply |y| with y's signs (QDOT_A; |y| is made
// per use, two vpabsb per pair and row, not measured against keeping it
// beside the pair).
//
// A tile is one weight row × up to eight activation rows. The activation
// side of every block pair (bytes rearranged to match the nibble order,
// 8·Σy per lane, the two scales spread over the halves) is made once per
// call, not per tile; each weight block pair is unpacked once per tile and
// multiplied with all the tile's activation rows from registers.
//
// Loop nest (batch_q4p): activation rows in groups (Q4B_BUF bytes of
// pairs, stored per tile and pair-interleaved so a tile reads one stream);
// per group, weight rows in chunks of Q4B_WCH bytes (they stay in L2); per
// chunk, tile column by tile column, and rows longer than Q4B_SEGMAX pairs
// in K segments of Q4B_SEG pairs with the accumulators carried between
// segments in memory (the same operations in the same order); per segment,
// every weight row of the chunk. So a tile's pairs (8 · 20 · 128 bytes at
// most) stay in L1 while the chunk's weight rows pass, instead of all the
// group's pairs being read from L2 for each weight row.
//
// Where the time goes (one thread, a C harness around mica_qmul, CPU time,
// min of runs, ns per block and activation row; before → after this loop
// nest): n = 512 on 2048×640 0.79 → 0.56, 640×2048 0.75–0.78 → 0.54,
// 640×1024 0.74 → 0.53, 1152×6912 0.75–0.77 → 0.56 with a 128 KiB group
// (8 rows of 216 blocks; the 64 KiB group it has, 4 rows: 0.64); n = 8 0.55–0.57 →
// 0.53–0.55 (its tile already stayed in L1), n = 8 on 1152×6912 0.74 →
// 0.54, n = 16 on 640×2048 0.75 → 0.53. Per block pair and row the loop
// issues three integer multiplies (2 vpmaddubsw, 1 vpmaddwd) to the Q8_0
// kernel's four per two blocks, and runs at about that ratio of its time:
// bound by the multiplies, so the scale products dw·dy are left in the
// loop (one vmulps). Q5_0 and IQ4_NL, which ran Q8_0's widened-int16 tiles
// (n ≥ 8) or the generic ones (n < 8) before, took this kernel on 2026-11-28: GB/s
// of weights × n, same harness, 2048×640 unless said: Q5_0 n = 2 10.4–10.7
// → 20.6, n = 4 13.5–17.2 → 22.1–29.1, n = 8 19.1–19.2 → 34.6–34.8, n = 512
// 18.7–18.9 → 33.5–34.1 (640×2048 19.7–19.8 → 35.6–36.1, 6912×1152
// 19.4–19.6 → 35.3–36.0); IQ4_NL n = 2 6.5–7.6 → 11.5–12.1, n = 4 12.2 →
// 15.5–16.0, n = 8 15.0–17.4 → 18.3–22.1, n = 512 14.5–15.9 → 17.7–20.6.
// Q4_1 and Q5_1 (the generic tiles before): Q4_1 n = 2 7.7 → 13.8–14.0,
// n = 4 12.4–15.9 → 20.7–28.3, n = 8 12.7–16.0 → 27.4–35.7, n = 512
// 15.0–15.6 → 34.4–35.2; Q5_1 n = 2 9.6 → 20.2, n = 4 17.7 → 29.2–29.5,
// n = 8 17.7–17.8 → 37.3, n = 512 16.3–16.9 → 35.7–36.2.

#ifndef QB_PF
#define QB_PF 8192 // software prefetch distance of the weight stream, bytes
#endif

// Activation side of one block pair (see q4pairs): the bytes rearranged,
// 8·Σy per int32 lane, and the scales dyA (lanes 0..3), dyB (lanes 4..7).
typedef struct {
	__m256i ylo, yhi, yoff;
	__m256 dy;
} QFN(b4pair);

// One tile (one weight row × RN activation rows) over one K segment of np
// block pairs. The activation pairs are stored per tile, pair-interleaved:
// pt holds, per pair, the RN rows' pairs one after another; w and pt point
// at the segment's first pair. The accumulators start at zero on the first
// segment (Q4B_FIRST) or from ab; on the last segment (Q4B_LAST) an odd
// last block (xo: its Q8_0 block in the tile's first activation row, rows
// xrb apart; w + 36·np: its weight block) is added alone over all eight
// lanes and the sums go to y (hsum); otherwise the accumulators go to ab.
// The same operations in the same order as one pass over the whole row.
// Q4_1 and Q5_1 also sum their min terms m_w·s_y per activation row in
// block order (lane j of am; sy: per pair the RN rows' s_y of block A, then
// those of block B; carried between segments in ab after the
// accumulators).
enum { Q4B_FIRST = 1, Q4B_LAST = 2 };
QINLINE void QFN(b4tile)(int T, int RN, const uint8_t *w, const QFN(b4pair) *pt, const float *sy, int np,
	const uint8_t *xo, size_t xrb, float *ab, int mode, float *y, size_t ldy) {
	const int hm = QFN(has_min32)(T), bs = QFN(bsize)(T), qo = bs - 16; // block bytes, codes' offset
	__m256 acc[8];
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++)
		acc[j] = mode & Q4B_FIRST ? _mm256_setzero_ps() : _mm256_load_ps(ab + 8 * j);
	__m256 am = mode & Q4B_FIRST || !hm ? _mm256_setzero_ps() : _mm256_loadu_ps(ab + 64);
	const __m256i m4 = _mm256_set1_epi8(0x0f), lut = QFN(iq4lut)();
	const __m256i half = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
	for (int k = 0; k < np; k++) {
		const uint8_t *wa = w + (size_t)k * 2 * bs;
		_mm_prefetch((const char *)(wa + QB_PF), _MM_HINT_T0);
		const __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(wa + bs + qo)), _mm_loadu_si128((const __m128i *)(wa + qo)));
		__m256i lo = _mm256_and_si256(v, m4);
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
		if (T == T_Q5_0 || T == T_Q5_1) {
			__m256i l5, h5;
			QFN(bits16p)(T, wa, &l5, &h5);
			lo = _mm256_or_si256(lo, l5);
			hi = _mm256_or_si256(hi, h5);
		} else if (T == T_IQ4_NL) {
			lo = _mm256_shuffle_epi8(lut, lo);
			hi = _mm256_shuffle_epi8(lut, hi);
		}
		const uint32_t h = (uint32_t)QFN(ld16)(wa) | (uint32_t)QFN(ld16)(wa + bs) << 16;
		const __m256 dw = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h))), half);
		if (hm) { // the RN rows' min terms, block A then block B
			const __m128 mw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)QFN(ld16)(wa + 2) | (uint32_t)QFN(ld16)(wa + bs + 2) << 16)));
			const float *sk = sy + (size_t)k * 2 * RN; // (lanes from RN on: unused)
			am = _mm256_add_ps(am, _mm256_mul_ps(_mm256_broadcastss_ps(mw), _mm256_loadu_ps(sk)));
			am = _mm256_add_ps(am, _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(mw)), _mm256_loadu_ps(sk + RN)));
		}
		const QFN(b4pair) *q = pt + (size_t)k * RN;
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const __m256i p = T == T_IQ4_NL
				? _mm256_add_epi32(QDOT_A(_mm256_abs_epi8(q[j].ylo), lo, q[j].ylo), QDOT_A(_mm256_abs_epi8(q[j].yhi), hi, q[j].yhi))
				: hm ? QDOT_U2(lo, q[j].ylo, hi, q[j].yhi) : _mm256_sub_epi32(QDOT_U2(lo, q[j].ylo, hi, q[j].yhi), q[j].yoff);
			acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, q[j].dy), _mm256_cvtepi32_ps(p), acc[j]);
		}
	}
	if (!(mode & Q4B_LAST)) {
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
			_mm256_store_ps(ab + 8 * j, acc[j]);
		if (hm)
			_mm256_storeu_ps(ab + 64, am);
		return;
	}
	float ams[8];
	_mm256_storeu_ps(ams, am);
	if (xo) { // odd last block, alone over all eight lanes
		const __m256i ones8 = _mm256_set1_epi8(1);
		const uint8_t *wa = w + (size_t)np * 2 * bs;
		float dw, m;
		const __m256i wq = QFN(dec32)(T, wa, &dw, &m); // IQ4_NL: the table's values
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const uint8_t *xa = xo + j * xrb;
			const __m256i yq = _mm256_loadu_si256((const __m256i *)(xa + (hm ? 4 : 2)));
			const __m256i yoff = _mm256_slli_epi32(QDOT_U(ones8, yq), T == T_Q5_0 ? 4 : 3);
			const __m256i p = T == T_IQ4_NL ? QDOT_S(wq, yq) : hm ? QDOT_U(wq, yq) : _mm256_sub_epi32(QDOT_U(wq, yq), yoff);
			acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * QFN(h2f)(xa)), _mm256_cvtepi32_ps(p), acc[j]);
			if (hm)
				ams[j] += m * QFN(h2f)(xa + 2);
		}
	}
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++) // all but Q4_0: + the min sum (0 for Q5_0, IQ4_NL) as mv_q4p
		y[j * ldy] = T != T_Q4_0 ? QFN(hsum)(acc[j]) + ams[j] : QFN(hsum)(acc[j]);
}

#define QB4N2(P, RN) QCAT(QFN(P), RN)
#define QB4N(P, RN) QB4N2(P, RN)
#define QB4_FN(P, T, RN)                                                                                       \
	static __attribute__((noinline)) void QB4N2(P, RN)(const uint8_t *w, const QFN(b4pair) *pt, const float *sy,  \
		int np, const uint8_t *xo, size_t xrb, float *ab, int mode, float *y, size_t ldy) {                     \
		QFN(b4tile)(T, RN, w, pt, sy, np, xo, xrb, ab, mode, y, ldy);                                           \
	}

QB4_FN(b4, T_Q4_0, 8)
QB4_FN(b4, T_Q4_0, 4)
QB4_FN(b4, T_Q4_0, 2)
QB4_FN(b4, T_Q4_0, 1)
QB4_FN(b45, T_Q5_0, 8)
QB4_FN(b45, T_Q5_0, 4)
QB4_FN(b45, T_Q5_0, 2)
QB4_FN(b45, T_Q5_0, 1)
QB4_FN(b4n, T_IQ4_NL, 8)
QB4_FN(b4n, T_IQ4_NL, 4)
QB4_FN(b4n, T_IQ4_NL, 2)
QB4_FN(b4n, T_IQ4_NL, 1)
QB4_FN(b41, T_Q4_1, 8)
QB4_FN(b41, T_Q4_1, 4)
QB4_FN(b41, T_Q4_1, 2)
QB4_FN(b41, T_Q4_1, 1)
QB4_FN(b451, T_Q5_1, 8)
QB4_FN(b451, T_Q5_1, 4)
QB4_FN(b451, T_Q5_1, 2)
QB4_FN(b451, T_Q5_1, 1)

typedef void (*QFN(b4fn))(const uint8_t *, const QFN(b4pair) *, const float *, int, const uint8_t *, size_t, float *,
	int, float *, size_t);

// Bytes of activation pairs the Q4_0 batch driver prepares at a time (on
// the stack): activation rows are taken in groups that fit. 64 KiB keeps
// the call (with the carried accumulators) under 100 KiB of stack, which
// every C library's default thread stack holds (musl's is 128 KiB); 128
// KiB measured 0.64 → 0.55 ns on 1152×6912 (8 rows of 216 blocks per
// group instead of 4).
#ifndef Q4B_BUF
#define Q4B_BUF (64 << 10)
#endif
// Bytes of weight rows taken at a time (a chunk that stays in L2 while the
// group's tiles pass over it).
#ifndef Q4B_WCH
#define Q4B_WCH (128 << 10)
#endif
// Block pairs per K segment when a row has more than Q4B_SEGMAX pairs: a
// tile's activation pairs for one segment (8 · 16 · 128 bytes) stay in L1
// while the chunk's weight rows pass.
#ifndef Q4B_SEG
#define Q4B_SEG 16
#endif
#ifndef Q4B_SEGMAX
#define Q4B_SEGMAX 20
#endif
// Weight rows per chunk at most when the accumulators are carried between
// segments (in ab: Q4B_ABF floats per weight row, 8 per activation row and
// 8 min sums).
enum { Q4B_ABROWS = 96, Q4B_ABF = 72 };

// Q4_0, Q5_0, IQ4_NL, Q4_1 or Q5_1 (T) weights, n activation rows: returns 0 when one activation row's
// pairs do not fit the buffer (the caller then uses the generic tiles,
// which give the same values). Loop nest: activation rows in groups (their
// pairs made once per call, stored per tile); per group, weight rows in
// chunks of Q4B_WCH bytes; per chunk, tile column by tile column (up to 8
// activation rows) and, for long rows, K segments of Q4B_SEG pairs with the
// accumulators carried between them in memory; per segment, every weight
// row of the chunk.
static __attribute__((noinline)) int QFN(batch_q4p)(int T, const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb,
	int n, int nb, float *y, size_t ldy, int r0, int r1) {
	const int hm = QFN(has_min32)(T), bs = QFN(bsize)(T), ybs = hm ? 36 : 34;
	QFN(b4pair) buf[Q4B_BUF / sizeof(QFN(b4pair))];
	float syb[2 * Q4B_BUF / sizeof(QFN(b4pair)) + 8]; // Q4_1, Q5_1: the s_y, per tile and pair
	float ab[Q4B_ABROWS * Q4B_ABF] __attribute__((aligned(32)));
	const int np = nb / 2, odd = nb & 1;
	const size_t cap = sizeof buf / sizeof buf[0];
	if (np > (int)cap)
		return 0;
	int jb = np ? (int)(cap / np) : n;
	if (jb >= n)
		jb = n;
	else if (jb >= 8)
		jb &= ~7; // whole 8-row tiles
	const int wide = jb >= 8;
	const int segmax = wide ? Q4B_SEGMAX : 2 * Q4B_SEGMAX;
	const int seg = np <= segmax ? (np ? np : 1) : wide ? Q4B_SEG : 2 * Q4B_SEG;
	int R = (int)(Q4B_WCH / wrb);
	if (seg < np && R > Q4B_ABROWS)
		R = Q4B_ABROWS;
	if (R < 1)
		R = 1;
	const QFN(b4fn) f4[4] = {QB4N(b4, 8), QB4N(b4, 4), QB4N(b4, 2), QB4N(b4, 1)};
	const QFN(b4fn) f5[4] = {QB4N(b45, 8), QB4N(b45, 4), QB4N(b45, 2), QB4N(b45, 1)};
	const QFN(b4fn) fn[4] = {QB4N(b4n, 8), QB4N(b4n, 4), QB4N(b4n, 2), QB4N(b4n, 1)};
	const QFN(b4fn) f41[4] = {QB4N(b41, 8), QB4N(b41, 4), QB4N(b41, 2), QB4N(b41, 1)};
	const QFN(b4fn) f51[4] = {QB4N(b451, 8), QB4N(b451, 4), QB4N(b451, 2), QB4N(b451, 1)};
	const QFN(b4fn) *f = T == T_Q5_0 ? f5 : T == T_IQ4_NL ? fn : T == T_Q4_1 ? f41 : T == T_Q5_1 ? f51 : f4;
	const int cw[4] = {8, 4, 2, 1};
	for (int j0 = 0; j0 < n; j0 += jb) {
		const int j1 = n - j0 < jb ? n : j0 + jb;
		// the group's pairs, tile by tile (a tile of width RN from row jt:
		// its pairs from offset (jt − j0)·np, RN rows each)
		for (int jt = j0; jt < j1;) {
			const int c = QFN(tilew)(cw, jt, j1);
			const int RN = cw[c];
			QFN(b4pair) *pt = buf + (size_t)(jt - j0) * np;
			float *st = syb + (size_t)(jt - j0) * np * 2;
			for (int jj = 0; jj < RN; jj++) {
				const uint8_t *xr = x + (size_t)(jt + jj) * xrb;
				QFN(q4pair) t;
				for (int k = 0; k < np; k++) {
					QFN(q4pairs)(T, xr + (size_t)k * 2 * ybs, 1, &t);
					QFN(b4pair) *d = pt + (size_t)k * RN + jj;
					d->ylo = t.ylo;
					d->yhi = t.yhi;
					d->yoff = t.yoff;
					d->dy = _mm256_setr_ps(t.dy[0], t.dy[0], t.dy[0], t.dy[0], t.dy[1], t.dy[1], t.dy[1], t.dy[1]);
					if (hm) {
						st[(size_t)k * 2 * RN + jj] = t.dy[2];
						st[(size_t)k * 2 * RN + RN + jj] = t.dy[3];
					}
				}
			}
			jt += RN;
		}
		for (int rc = r0; rc < r1; rc += R) {
			const int re = r1 - rc < R ? r1 : rc + R;
			for (int j = j0; j < j1;) {
				const int c = QFN(tilew)(cw, j, j1);
				const int RN = cw[c];
				const QFN(b4pair) *pt = buf + (size_t)(j - j0) * np;
				const float *st = syb + (size_t)(j - j0) * np * 2;
				const uint8_t *xo = odd ? x + (size_t)j * xrb + (size_t)(nb - 1) * ybs : 0;
				for (int s0 = 0; s0 < np || s0 == 0; s0 += seg) {
					const int ns = np - s0 < seg ? np - s0 : seg;
					const int mode = (s0 == 0 ? Q4B_FIRST : 0) | (s0 + ns >= np ? Q4B_LAST : 0);
					for (int r = rc; r < re; r++)
						f[c](w + (size_t)r * wrb + (size_t)s0 * 2 * bs, pt + (size_t)s0 * RN, st + (size_t)s0 * 2 * RN, ns,
							xo, xrb, ab + (size_t)(r - rc) * Q4B_ABF, mode, y + (size_t)j * ldy + r, ldy);
				}
				j += RN;
			}
		}
	}
	return 1;
}
