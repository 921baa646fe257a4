// Batch kernel (n > 1: decode batches and prefill) for Q8_0 weights, part
// of qkern.h, in the AVX2 build only (QK_BATCH_WIDE; with VNNI the byte dot
// product is one instruction and the generic tiles are used). (Q5_0 and
// IQ4_NL ran these tiles too, their blocks widened like a Q8_0 block's
// bytes; they now run the block-pair kernel of qkern_batch4.h, 1.6–1.9× and
// 1.2–1.8× faster.)
//
// A tile is RM weight rows × RN activation rows (1×8 when a call has eight
// activation rows or more, else 2×4): each weight block is loaded and
// unpacked once and multiplied with the RN activation blocks, all from
// registers. Per output element the float operations are those of mv_q8_0
// (n = 1) and tile32: per block,
//   acc = fma(broadcast(dw·dy), float(int32x8 lane sums), acc)
// with dw·dy the same IEEE product and the same exact integer lane sums,
// then hsum in the same tree. So the outputs do not depend on n, on the tile
// an element falls in, or on the row split.
//
// Loop nest (batch_q8_0): activation rows in groups (QB_BUF bytes,
// widened once per call, stored per tile and block-interleaved so a tile
// reads one stream with constant offsets); per group, weight rows in chunks
// of QB_WCH bytes (they stay in L2); per chunk, tile column by tile column
// (8 activation rows), and rows longer than QB_SEGMAX blocks in K segments
// of QB_SEG blocks, the accumulators carried between segments in memory
// (the same operations in the same order); per segment, every weight row of
// the chunk. So a tile's activations (8 · 40 · 64 bytes at most) stay in L1
// while the chunk's weight rows pass, instead of all the group's rows being
// read from L2 for each weight row.
//
// Where the time goes (Zen 3, ns per block and activation row, one thread,
// a C harness around this function, CPU time, min of runs; before → after
// this loop nest): n = 512, K = 640 1.02 → 0.76, K = 1024 0.93 → 0.73,
// K = 2048 0.97 → 0.73; n = 8 on 2048×640 0.88 → 0.75, 640×2048 0.91 →
// 0.72; n = 16 0.88 → 0.74 and 1.00 → 0.72; n = 4 (2×4 tiles) 0.91 → 0.85,
// but 640×2048 0.78 → 0.80. The savings: L1-resident tile activations
// (1.17× at n = 512, K = 640), the block-interleaved layout and scale
// products (one pointer each instead of eight, which the 1×8 loop had
// spilled: another 1.15×), whole 1×8 tiles per group (no 4/2/1-row
// remainder tiles inside a prefill; before the interleaving, rows 4 KiB
// apart at K = 2048 also put a tile's eight rows in the same L1 sets).
// Earlier: the integer products as two vpmaddwd on int16 (wide8) instead
// of vpsignb/vpmaddubsw/vpmaddwd; activations widened and their scales
// converted once per call instead of per tile. Tried and no better: 3×4,
// 3×3, 4×2 tiles (2×3, 3×2 and 2×2 worse), the sign/vpmaddubsw products,
// scale products by in-register shuffles or made a group ahead inside the
// loop, prefetch distances 1–32 KiB (8 KiB best out of cache); groups of
// 128 or 256 KiB instead of 64 and weight chunks of 64 or 256 KiB instead
// of 128 (within 1%); segments of 16 or 48 blocks (K = 2048, n = 512: 0.77
// and 0.82 ns against 0.73 with 32); the scale products left out
// altogether (an experiment, wrong results) gain only 1–2%: the loop is
// bound by its vector operations (16 vpmaddwd, 8 vpaddd, 8 vcvtdq2ps, 8
// FMAs and the weight unpack per block and eight rows).

// A Q8_0 block's 32 signed bytes as two int16 vectors for vpmaddwd: X holds
// the element pairs (4l, 4l+1) and Y the pairs (4l+2, 4l+3) of each 4-element
// lane l, so madd(Xw, Xy) + madd(Yw, Yy) is, lane for lane, the same exact
// int32 sum as vpsignb/vpmaddubsw/vpmaddwd over the bytes (which never
// saturates either: the activation quantizer gives −127..127). Two
// multiplies and an add per weight and activation block instead of sign,
// multiply, multiply: in a loop of the other operations of a block this
// measured ~1.2 cycles against ~1.8 on Zen 3. The lanes come out in the
// order QB_PERM names (two 128-bit shuffles of the sign-extended halves);
// the accumulators are put back in natural order before the horizontal sum.
QINLINE void QFN(wide8)(const uint8_t *p, __m256i *X, __m256i *Y) {
	const __m256 a = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p)));
	const __m256 b = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16))));
	*X = _mm256_castps_si256(_mm256_shuffle_ps(a, b, 0x88));
	*Y = _mm256_castps_si256(_mm256_shuffle_ps(a, b, 0xdd));
}

// Physical lane p of a wide8 product holds natural lane QB_PERM[p] (and the
// permutation is its own inverse).
#define QB_PERM _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7)

// Software prefetch distance of the weight stream, in bytes.
#ifndef QB_PF
#define QB_PF 8192
#endif

// One tile over one K segment of nb blocks. The activations are stored
// per tile, block-interleaved: xt holds, per block, the RN rows' 32 int16
// (X then Y, from wide8) one after another, and dyt their scales as floats
// (RN per block); w, xt and dyt point at the segment's first block. sp:
// room for RM·RN·nb floats, the tile's scale products dw·dy, made first
// and then broadcast from memory into the multiply-adds (a load: no shuffle
// or multiply on the vector pipes per block pair). The accumulators start
// at zero on the first segment (QB_FIRST) or from ab, and end in y (hsum)
// on the last (QB_LAST) or in ab: the same operations in the same order as
// one pass over the whole row.
enum { QB_FIRST = 1, QB_LAST = 2 };
QINLINE void QFN(bq8)(int RM, int RN, const uint8_t *w, size_t wrb, const int16_t *xt, const float *dyt,
	int nb, float *sp, float *ab, int mode, float *y, size_t ldy) {
	const int bs = 34;
	for (int b = 0; b < nb; b++) {
		float *s = sp + (size_t)b * RM * RN;
		const float *dy = dyt + (size_t)b * RN;
		if (RM == 1 && RN == 8) {
			_mm256_store_ps(s, _mm256_mul_ps(_mm256_set1_ps(QFN(h2f)(w + (size_t)b * bs)), _mm256_load_ps(dy)));
		} else if (RM == 2 && RN == 4) {
			const __m128 d = _mm_load_ps(dy);
			_mm_store_ps(s, _mm_mul_ps(_mm_set1_ps(QFN(h2f)(w + (size_t)b * bs)), d));
			_mm_store_ps(s + 4, _mm_mul_ps(_mm_set1_ps(QFN(h2f)(w + wrb + (size_t)b * bs)), d));
		} else {
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				const float dw = QFN(h2f)(w + i * wrb + (size_t)b * bs);
				#pragma GCC unroll 8
				for (int j = 0; j < RN; j++)
					s[i * RN + j] = dw * dy[j];
			}
		}
	}
	__m256 acc[4][8];
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
			acc[i][j] = mode & QB_FIRST ? _mm256_setzero_ps() : _mm256_load_ps(ab + (i * RN + j) * 8);
	for (int b = 0; b < nb; b++) {
		__m256i qx[4], qy[4];
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wb = w + i * wrb + (size_t)b * bs;
			_mm_prefetch((const char *)(wb + QB_PF), _MM_HINT_T0);
			QFN(wide8)(wb + 2, &qx[i], &qy[i]);
		}
		const int16_t *xb = xt + (size_t)b * RN * 32;
		const float *s = sp + (size_t)b * RM * RN;
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const __m256i X = _mm256_load_si256((const __m256i *)(xb + 32 * j));
			const __m256i Y = _mm256_load_si256((const __m256i *)(xb + 32 * j + 16));
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(qx[i], X), _mm256_madd_epi16(qy[i], Y));
				acc[i][j] = _mm256_fmadd_ps(_mm256_broadcast_ss(s + i * RN + j), _mm256_cvtepi32_ps(p), acc[i][j]);
			}
		}
	}
	if (mode & QB_LAST) {
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++)
				y[j * ldy + i] = QFN(hsum)(_mm256_permutevar8x32_ps(acc[i][j], QB_PERM));
	} else {
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
			#pragma GCC unroll 8
			for (int j = 0; j < RN; j++)
				_mm256_store_ps(ab + (i * RN + j) * 8, acc[i][j]);
	}
}

#define QBN2(P, RM, RN) QCAT(QFN(P), RM##x##RN)
#define QBN(P, RM, RN) QBN2(P, RM, RN)
#define QBQ8_FN(RM, RN)                                                                                     \
	static __attribute__((noinline)) void QBN2(bq8, RM, RN)(const uint8_t *w, size_t wrb, const int16_t *xt,  \
		const float *dyt, int nb, float *sp, float *ab, int mode, float *y, size_t ldy) {                     \
		QFN(bq8)(RM, RN, w, wrb, xt, dyt, nb, sp, ab, mode, y, ldy);                                         \
	}

// The tiles: 1×8 (eight activation rows per weight row) when a call has at
// least eight activation rows, else 2×4 (see the measurements at the top),
// with narrower ones for the remainders.
QBQ8_FN(1, 8) QBQ8_FN(1, 4) QBQ8_FN(1, 2) QBQ8_FN(1, 1)
QBQ8_FN(2, 4) QBQ8_FN(2, 2) QBQ8_FN(2, 1)

typedef void (*QFN(bq8fn))(const uint8_t *, size_t, const int16_t *, const float *, int, float *, float *, int,
	float *, size_t);

// Bytes of widened activations and float scales the batch driver prepares at
// a time (on the stack): activation rows are taken in groups that fit. With
// the carried accumulators (ab, 24 KiB) a call stays under 100 KiB of
// stack, which every C library's default thread stack holds.
#ifndef QB_BUF
#define QB_BUF (64 << 10)
#endif
// Bytes of weight rows taken at a time (a chunk that stays in L2 while the
// group's tiles of activation rows pass over it).
#ifndef QB_WCH
#define QB_WCH (128 << 10)
#endif
// Blocks per K segment when a row is longer than QB_SEGMAX blocks: a tile's
// widened activation rows for one segment (8 · 32 · 64 bytes) stay in L1
// while the chunk's weight rows pass.
#ifndef QB_SEG
#define QB_SEG 32
#endif
#ifndef QB_SEGMAX
#define QB_SEGMAX 40
#endif
// Weight rows per chunk at most when the accumulators are carried between
// segments (in ab: 64 floats per weight row).
enum { QB_ABROWS = 96 };

// Q8_0 weights, n activation rows: returns 0 when the rows are too long for
// the buffer to hold one activation row (the caller then uses the generic
// tiles, which give the same values).
static __attribute__((noinline)) int QFN(batch_q8_0)(const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb,
	int n, int nb, float *y, size_t ldy, int r0, int r1) {
	const int bs = 34;
	// per activation row: nb blocks of 32 int16 and nb float scales, plus
	// a tile's scale products (8·nb floats, 32-byte aligned)
	const size_t spb = (size_t)8 * nb * 4 + 32, rowb = (size_t)nb * (64 + 4);
	if (spb + rowb > QB_BUF)
		return 0;
	int jb = (int)((QB_BUF - spb) / rowb);
	if (jb >= n)
		jb = n;
	else if (jb >= 8)
		jb &= ~7; // whole 1×8 tiles
	int16_t buf[QB_BUF / 2] __attribute__((aligned(32)));
	float ab[QB_ABROWS * 64] __attribute__((aligned(32)));
	int16_t *xw = buf;
	float *dyf = (float *)(buf + (size_t)jb * nb * 32);
	float *sp = dyf + (((size_t)jb * nb + 7) & ~(size_t)7);
	// tiles by width (activation rows), widest first, for full-height
	// (RM weight rows) and single-row tiles
	const int wide = jb >= 8, RM = wide ? 1 : 2;
	// K segments (only where the widest tile's activations for the whole
	// row would not stay in L1: 4-row tiles take twice as many blocks) and
	// weight-row chunks
	const int segmax = wide ? QB_SEGMAX : 2 * QB_SEGMAX;
	const int seg = nb <= segmax ? nb : wide ? QB_SEG : 2 * QB_SEG;
	int R = (int)(QB_WCH / wrb);
	if (seg < nb && R > QB_ABROWS)
		R = QB_ABROWS;
	R &= ~1; // whole 2×4 tiles
	if (R < 2)
		R = 2;
	const QFN(bq8fn) t8[4] = {QBN(bq8, 1, 8), QBN(bq8, 1, 4), QBN(bq8, 1, 2), QBN(bq8, 1, 1)};
	const QFN(bq8fn) t4[3] = {QBN(bq8, 2, 4), QBN(bq8, 2, 2), QBN(bq8, 2, 1)};
	const QFN(bq8fn) t4e[3] = {t8[1], t8[2], t8[3]};
	const int w8[4] = {8, 4, 2, 1}, w4[3] = {4, 2, 1};
	const int *cw = wide ? w8 : w4;
	for (int j0 = 0; j0 < n; j0 += jb) {
		const int j1 = n - j0 < jb ? n : j0 + jb;
		// the group's activations, tile by tile (a tile of width RN from
		// row jt: its blocks from offset (jt − j0)·nb, RN rows each)
		for (int jt = j0; jt < j1;) {
			const int k = QFN(tilew)(cw, jt, j1);
			const int RN = cw[k];
			int16_t *xt = xw + (size_t)(jt - j0) * nb * 32;
			float *dt = dyf + (size_t)(jt - j0) * nb;
			for (int jj = 0; jj < RN; jj++)
				for (int b = 0; b < nb; b++) {
					const uint8_t *xb = x + (size_t)(jt + jj) * xrb + (size_t)b * 34;
					__m256i X, Y;
					QFN(wide8)(xb + 2, &X, &Y);
					int16_t *d = xt + ((size_t)b * RN + jj) * 32;
					_mm256_store_si256((__m256i *)d, X);
					_mm256_store_si256((__m256i *)(d + 16), Y);
					dt[(size_t)b * RN + jj] = QFN(h2f)(xb);
				}
			jt += RN;
		}
		for (int rc = r0; rc < r1; rc += R) {
			const int re = r1 - rc < R ? r1 : rc + R;
			for (int j = j0; j < j1;) {
				const int k = QFN(tilew)(cw, j, j1);
				const int RN = cw[k];
				for (int s0 = 0; s0 < nb; s0 += seg) {
					const int ns = nb - s0 < seg ? nb - s0 : seg;
					const int mode = (s0 == 0 ? QB_FIRST : 0) | (s0 + ns == nb ? QB_LAST : 0);
					for (int r = rc; r < re;) {
						const int rm = re - r >= RM ? RM : 1;
						const QFN(bq8fn) f = wide ? t8[k] : rm == RM ? t4[k] : t4e[k];
						f(w + (size_t)r * wrb + (size_t)s0 * bs, wrb,
							xw + ((size_t)(j - j0) * nb + (size_t)s0 * RN) * 32,
							dyf + (size_t)(j - j0) * nb + (size_t)s0 * RN, ns, sp, ab + (size_t)(r - rc) * 64,
							mode, y + (size_t)j * ldy + r, ldy);
						r += rm;
					}
				}
				j += RN;
			}
		}
	}
	return 1;
}
