// Batch kernel (n > 1) for Q4_0 weights, part of qkern.h (compiled once per
// instruction set through it; uses its macros).
//
// Per output element the float operations are those of the n = 1 kernel
// mv_q4_0: blocks taken in pairs (2k, 2k+1), one multiply-add per pair with
// lanes 0..3 holding block 2k's folded integer lane sums and lanes 4..7
// block 2k+1's, scaled by dw·dy of their block (the same IEEE products); an
// odd last block alone over all eight lanes; then hsum. So a row's outputs
// do not depend on n, the tile, or the row split.
//
// A tile is one weight row × up to eight activation rows (measured on
// 4096×640, n = 8, one thread: 1×8 0.57 ns per block and activation row,
// 3×4 0.64, 2×4 0.67, 1×4 0.71, 2×2 0.88; the generic tiles 1.33). The
// activation side
// of every block pair (bytes rearranged to match the nibble order, 8·Σy per
// lane, the two scales spread over the halves) is made once per call, not
// per tile; each weight block pair is unpacked once per tile and multiplied
// with all the tile's activation rows from registers.

#ifndef QB_PF
#define QB_PF 8192 // software prefetch distance of the weight stream, bytes
#endif

// Activation side of one block pair (see q4pairs): the bytes rearranged,
// 8·Σy per int32 lane, and the scales dyA (lanes 0..3), dyB (lanes 4..7).
typedef struct {
	__m256i ylo, yhi, yoff;
	__m256 dy;
} QFN(b4pair);

QINLINE void QFN(b4tile)(int RM, int RN, const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb,
	const QFN(b4pair) *pp, size_t pps, int nb, float *y, size_t ldy) {
	__m256 acc[4][8];
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
			acc[i][j] = _mm256_setzero_ps();
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i half = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
	int b = 0;
	for (; b + 2 <= nb; b += 2) {
		__m256i lo[4], hi[4];
		__m256 dw[4];
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wa = w + i * wrb + (size_t)b * 18;
			_mm_prefetch((const char *)(wa + QB_PF), _MM_HINT_T0);
			const __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(wa + 20)), _mm_loadu_si128((const __m128i *)(wa + 2)));
			lo[i] = _mm256_and_si256(v, m4);
			hi[i] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			const uint32_t h = (uint32_t)QFN(ld16)(wa) | (uint32_t)QFN(ld16)(wa + 18) << 16;
			dw[i] = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h))), half);
		}
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const QFN(b4pair) *q = pp + j * pps + b / 2;
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				const __m256i p = _mm256_sub_epi32(QDOT_U2(lo[i], q->ylo, hi[i], q->yhi), q->yoff);
				acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dw[i], q->dy), _mm256_cvtepi32_ps(p), acc[i][j]);
			}
		}
	}
	if (b < nb) { // odd last block, alone over all eight lanes
		const __m256i ones8 = _mm256_set1_epi8(1);
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const uint8_t *xa = x + j * xrb + (size_t)b * 34;
			const __m256i yq = _mm256_loadu_si256((const __m256i *)(xa + 2));
			const __m256i yoff = _mm256_slli_epi32(QDOT_U(ones8, yq), 3);
			const float dy = QFN(h2f)(xa);
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				const uint8_t *wa = w + i * wrb + (size_t)b * 18;
				const __m256i p = _mm256_sub_epi32(QDOT_U(QFN(nib32)(wa + 2), yq), yoff);
				acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(QFN(h2f)(wa) * dy), _mm256_cvtepi32_ps(p), acc[i][j]);
			}
		}
	}
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++)
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
			y[j * ldy + i] = QFN(hsum)(acc[i][j]);
}

#define QB4N2(RM, RN) QCAT(QFN(b4), RM##x##RN)
#define QB4N(RM, RN) QB4N2(RM, RN)
#define QB4_FN2(RM, RN)                                                                            \
	static __attribute__((noinline)) void QB4N2(RM, RN)(const uint8_t *w, size_t wrb, const uint8_t *x, \
		size_t xrb, const QFN(b4pair) *pp, size_t pps, int nb, float *y, size_t ldy) {           \
		QFN(b4tile)(RM, RN, w, wrb, x, xrb, pp, pps, nb, y, ldy);                                \
	}
#define QB4_FN(RM, RN) QB4_FN2(RM, RN)

QB4_FN(1, 8)
QB4_FN(1, 4)
QB4_FN(1, 2)
QB4_FN(1, 1)

typedef void (*QFN(b4fn))(const uint8_t *, size_t, const uint8_t *, size_t, const QFN(b4pair) *, size_t, int, float *,
	size_t);

// Bytes of activation pairs the Q4_0 batch driver prepares at a time (on
// the stack): activation rows are taken in groups that fit.
enum { Q4B_BUF = 64 << 10 };

// Q4_0 weights, n activation rows: returns 0 when one activation row's
// pairs do not fit the buffer (the caller then uses the generic tiles,
// which give the same values).
static __attribute__((noinline)) int QFN(batch_q4_0)(const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb,
	int n, int nb, float *y, size_t ldy, int r0, int r1) {
	QFN(b4pair) buf[Q4B_BUF / sizeof(QFN(b4pair))];
	const int np = nb / 2;
	const size_t cap = sizeof buf / sizeof buf[0];
	if (np > (int)cap)
		return 0;
	int jb = np ? (int)(cap / np) : n;
	if (jb > n)
		jb = n;
	const QFN(b4fn) f[4] = {QB4N(1, 8), QB4N(1, 4), QB4N(1, 2), QB4N(1, 1)};
	const int cw[4] = {8, 4, 2, 1};
	for (int j0 = 0; j0 < n; j0 += jb) {
		const int j1 = n - j0 < jb ? n : j0 + jb;
		for (int j = j0; j < j1; j++) {
			const uint8_t *xr = x + (size_t)j * xrb;
			QFN(q4pair) t;
			for (int k = 0; k < np; k++) {
				QFN(q4pairs)(xr + (size_t)k * 68, 1, &t);
				QFN(b4pair) *d = buf + (size_t)(j - j0) * np + k;
				d->ylo = t.ylo;
				d->yhi = t.yhi;
				d->yoff = t.yoff;
				d->dy = _mm256_setr_ps(t.dy[0], t.dy[0], t.dy[0], t.dy[0], t.dy[1], t.dy[1], t.dy[1], t.dy[1]);
			}
		}
		for (int r = r0; r < r1; r++) {
			for (int j = j0; j < j1;) {
				int k = 0;
				while (j + cw[k] > j1)
					k++;
				f[k](w + (size_t)r * wrb, wrb, x + (size_t)j * xrb, xrb, buf + (size_t)(j - j0) * np, np, nb,
					y + (size_t)j * ldy + r, ldy);
				j += cw[k];
			}
		}
	}
	return 1;
}
