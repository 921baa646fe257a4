// Batch kernel (n > 1: decode batches and prefill) for Q8_0 weights, part
// of qkern.h, in the AVX2 build only (QK_BATCH_WIDE; with VNNI the byte dot
// product is one instruction and the generic tiles are used).
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
// Where the time goes (Zen 3, one thread, 4096×640, n = 8, per block and
// activation row): the generic 2×4 tile 1.08 ns, this kernel 0.86 ns (2×4:
// 0.90; n = 4 in 2×4 tiles 0.91, in 1×4 ones ≈ 1.0). The savings: the
// integer products as two vpmaddwd on int16 (wide8) instead of
// vpsignb/vpmaddubsw/vpmaddwd; activations widened and their scales
// converted once per call instead of per tile; the tile's scale products
// made eight blocks per multiply before its loop and broadcast from memory
// into the multiply-adds. Tried and no better: 3×4, 3×3, 4×2 tiles (2×3,
// 3×2 and 2×2 worse), the sign/vpmaddubsw products with the same scale
// scheme, scale products by in-register shuffles or made a group ahead
// inside the loop, prefetch distances 1–32 KiB (8 KiB best out of cache).

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

// The F16 scales of the (up to) 8 Q8_0 blocks from p as floats, packed
// with scalar shifts (the integer units are otherwise idle) and two vector
// inserts; with fewer than 8 blocks left the last one is repeated (in
// bounds; those lanes are not used).
QINLINE __m256 QFN(dw8)(const uint8_t *p, int left) {
	uint64_t lo = 0, hi = 0;
	if (left >= 8) {
		#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			lo |= (uint64_t)QFN(ld16)(p + 34 * k) << (16 * k);
			hi |= (uint64_t)QFN(ld16)(p + 34 * (k + 4)) << (16 * k);
		}
	} else {
		for (int k = 0; k < 4; k++) {
			lo |= (uint64_t)QFN(ld16)(p + 34 * (k < left ? k : left - 1)) << (16 * k);
			hi |= (uint64_t)QFN(ld16)(p + 34 * (k + 4 < left ? k + 4 : left - 1)) << (16 * k);
		}
	}
	return _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128((long long)lo), (long long)hi, 1));
}

// xw: per activation row, nb blocks of 32 int16 (X then Y, from wide8),
// row stride xws int16; dyf: the activation scales as floats, row stride
// dys ≥ nb rounded up to 8 (zeros past nb). sp: room for RM·RN·dys floats,
// the tile's scale products dw·dy, made first, eight blocks per multiply,
// and then broadcast from memory into the multiply-adds (a load: no
// shuffle or multiply on the vector pipes per block pair).
QINLINE void QFN(bq8)(int RM, int RN, const uint8_t *w, size_t wrb, const int16_t *xw, size_t xws,
	const float *dyf, size_t dys, int nb, float *sp, float *y, size_t ldy) {
	for (int b = 0; b < nb; b += 8) {
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const __m256 dw = QFN(dw8)(w + i * wrb + (size_t)b * 34, nb - b);
			#pragma GCC unroll 8
			for (int j = 0; j < RN; j++)
				_mm256_store_ps(sp + (size_t)(i * RN + j) * dys + b, _mm256_mul_ps(dw, _mm256_load_ps(dyf + j * dys + b)));
		}
	}
	__m256 acc[4][8];
	#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
			acc[i][j] = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		__m256i qx[4], qy[4];
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++) {
			const uint8_t *wb = w + i * wrb + (size_t)b * 34;
			_mm_prefetch((const char *)(wb + QB_PF), _MM_HINT_T0);
			QFN(wide8)(wb + 2, &qx[i], &qy[i]);
		}
		#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			const int16_t *yb = xw + j * xws + (size_t)b * 32;
			const __m256i X = _mm256_load_si256((const __m256i *)yb), Y = _mm256_load_si256((const __m256i *)(yb + 16));
			#pragma GCC unroll 8
			for (int i = 0; i < RM; i++) {
				const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(qx[i], X), _mm256_madd_epi16(qy[i], Y));
				acc[i][j] = _mm256_fmadd_ps(_mm256_broadcast_ss(sp + (size_t)(i * RN + j) * dys + b),
					_mm256_cvtepi32_ps(p), acc[i][j]);
			}
		}
	}
	#pragma GCC unroll 8
	for (int j = 0; j < RN; j++)
		#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
			y[j * ldy + i] = QFN(hsum)(_mm256_permutevar8x32_ps(acc[i][j], QB_PERM));
}

#define QBN2(RM, RN) QCAT(QFN(bq8), RM##x##RN)
#define QBN(RM, RN) QBN2(RM, RN)
#define QBQ8_FN2(RM, RN)                                                                         \
	static __attribute__((noinline)) void QBN2(RM, RN)(const uint8_t *w, size_t wrb, \
		const int16_t *xw, size_t xws, const float *dyf, size_t dys, int nb, float *sp, float *y, size_t ldy) { \
		QFN(bq8)(RM, RN, w, wrb, xw, xws, dyf, dys, nb, sp, y, ldy);                                \
	}

#define QBQ8_FN(RM, RN) QBQ8_FN2(RM, RN)

// The tiles: 1×8 (eight activation rows per weight row) when a call has at
// least eight activation rows, else 2×4 (see the measurements at the top),
// with narrower ones for the remainders.
QBQ8_FN(1, 8)
QBQ8_FN(1, 4)
QBQ8_FN(1, 2)
QBQ8_FN(1, 1)
QBQ8_FN(2, 4)
QBQ8_FN(2, 2)
QBQ8_FN(2, 1)

typedef void (*QFN(bq8fn))(const uint8_t *, size_t, const int16_t *, size_t, const float *, size_t, int, float *,
	float *, size_t);

// Bytes of widened activations and float scales the batch driver prepares at
// a time (on the stack): activation rows are taken in groups that fit.
enum { QB_BUF = 64 << 10 };

// Q8_0 weights, n activation rows: returns 0 when the rows are too long for
// the buffer to hold one activation row (the caller then uses the generic
// tiles, which give the same values).
static __attribute__((noinline)) int QFN(batch_q8_0)(const uint8_t *w, size_t wrb, const uint8_t *x, size_t xrb,
	int n, int nb, float *y, size_t ldy, int r0, int r1) {
	// per activation row: nb blocks of 32 int16 and nbp float scales, plus
	// a tile's scale products (at most 8·nbp floats)
	const int nbp = (nb + 7) & ~7;
	const size_t spb = (size_t)8 * nbp * 4, rowb = (size_t)nb * 64 + (size_t)nbp * 4;
	if (spb + rowb > QB_BUF)
		return 0;
	int jb = (int)((QB_BUF - spb) / rowb);
	if (jb > n)
		jb = n;
	int16_t buf[QB_BUF / 2] __attribute__((aligned(32)));
	int16_t *xw = buf;
	float *dyf = (float *)(buf + (size_t)jb * nb * 32);
	float *sp = dyf + (size_t)jb * nbp;
	// tiles by width (activation rows), widest first, for full-height
	// (RM weight rows) and single-row tiles
	const int wide = jb >= 8, RM = wide ? 1 : 2;
	const QFN(bq8fn) t8[4] = {QBN(1, 8), QBN(1, 4), QBN(1, 2), QBN(1, 1)};
	const QFN(bq8fn) t4[3] = {QBN(2, 4), QBN(2, 2), QBN(2, 1)};
	const QFN(bq8fn) t4e[3] = {QBN(1, 4), QBN(1, 2), QBN(1, 1)};
	const int w8[4] = {8, 4, 2, 1}, w4[3] = {4, 2, 1};
	for (int j0 = 0; j0 < n; j0 += jb) {
		const int j1 = n - j0 < jb ? n : j0 + jb;
		for (int j = j0; j < j1; j++)
			for (int b = 0; b < nb; b++) {
				const uint8_t *xb = x + (size_t)j * xrb + (size_t)b * 34;
				__m256i X, Y;
				QFN(wide8)(xb + 2, &X, &Y);
				int16_t *d = xw + ((size_t)(j - j0) * nb + b) * 32;
				_mm256_store_si256((__m256i *)d, X);
				_mm256_store_si256((__m256i *)(d + 16), Y);
				dyf[(size_t)(j - j0) * nbp + b] = QFN(h2f)(xb);
			}
		for (int j = j0; j < j1; j++)
			for (int b = nb; b < nbp; b++)
				dyf[(size_t)(j - j0) * nbp + b] = 0;
		for (int r = r0; r < r1;) {
			const int rm = r1 - r >= RM ? RM : 1;
			const QFN(bq8fn) *f = wide ? t8 : rm == RM ? t4 : t4e;
			const int *cw = wide ? w8 : w4;
			for (int j = j0; j < j1;) {
				int k = 0;
				while (j + cw[k] > j1)
					k++;
				f[k](w + (size_t)r * wrb, wrb, xw + (size_t)(j - j0) * nb * 32, (size_t)nb * 32,
					dyf + (size_t)(j - j0) * nbp, nbp, nb, sp, y + (size_t)j * ldy + r, ldy);
				j += cw[k];
			}
			r += rm;
		}
	}
	return 1;
}
