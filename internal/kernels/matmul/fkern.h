// F32/F16/BF16 matrix kernels in llamafile tinyBLAS's summation order
// (floatorder.go), written once and compiled per instruction set.
//
// Every output element Y[j][r] owns 16 float32 lane accumulators, held as
// FK_NH vectors of FW lanes (AVX2: two __m256, lanes 0–7 and 8–15;
// AVX-512: one __m512). F32/F16: per 16 columns one fma per lane. BF16: per
// 32 columns two fmas per lane, the odd column's first; the activations
// come in the kernel order of Prepared.kern (per 32-column group: the 16 odd
// columns, then the 16 even ones), the weights are split into odd/even
// columns in registers. Then the fixed reduction tree (FV_RED16) and the
// columns beyond the last full step, in order, by scalar fmas.
//
// Matrix-vector (n = 1), bound by memory bandwidth: a call's row range is
// cut into FK_S runs of consecutive rows (mica_stream_len rows each,
// streams.h; the rows left over are done alone), and the kernel takes one
// row of each run at a time, all its columns, one accumulator set per row. Each run is read strictly
// sequentially, so the hardware prefetchers see FK_S clean streams, and the
// FK_S independent fma chains hide the latency that bounds one row. (The
// former tiles of 6 adjacent rows read column-interleaved reached 17–22 GB/s
// of F16 weights on the 262144×640 output projection (Zen 3, 2 threads),
// the streams about 27: the read bandwidth.)
//
// n > 1: a register tile computes RM weight rows × RN activation rows; both
// operands are contiguous along k, so the activations are not packed:
// blocks of FK_JB activation rows × FK_RB weight rows, the
// columns cut into blocks of at most FK_KC; F16 and BF16 weight rows are
// first widened (exactly) into a small per-thread buffer, one tile's rows
// and column block at a time (packw), which the tile then reuses for every
// activation tile of the block; the lane accumulators of a tile are stored
// to a scratch buffer between column blocks (exact) and reloaded. Every
// output goes through the same fma sequence on each lane whatever the tile
// shape, block, row range or n, so all paths give identical bits — and the
// plain-Go reference's. (On AVX2 this blocked path runs n ≤ FK_JB only;
// larger n go to the AVX2 file's FK_GEMM, a kernel on half lanes.)
//
// FK_REG(v) pins a loaded vector in a register (an empty asm), so that the
// compiler does not fold its load into every fma that uses it: the tiles
// exist to load each operand once.
//
// The including file defines FK_ISA, FV, FW, FK_NH (= 16/FW), FV_ZERO,
// FV_LOAD, FV_STORE, FV_FMA, FK_REG, FLOADW(T, p) (FW F32/F16 weights
// widened), FLOADBF_ODD(p) and FLOADBF_EVEN(p) (of 2·FW BF16 weights, the
// FW odd and the FW even columns, widened),
// FV_RED16(v) (reduction of the 16 lanes in v[0..FK_NH-1]), the tile shapes
// FK_RM×FK_RN (F32, widened F16), FK_RMB×FK_RNB (split BF16) and
// FK_TILES_<T>(X), which applies X(T, RM, RN) to every tile shape type T
// needs (at most FK_MM × FK_MN). It may define FK_GEMM, a function with
// mica_fmul's parameters that then runs the products with n > FK_JB.

#include "streams.h"

#define FCAT2(a, b) a##_##b
#define FCAT(a, b) FCAT2(a, b)
#define FFN(name) FCAT(name, FK_ISA)
#define FINLINE static inline __attribute__((always_inline))

enum { FT_F32 = 0, FT_F16 = 1, FT_BF16 = 30, FT_BF16S = 31 };

FINLINE float FFN(load1)(int T, const uint8_t *p) {
	if (T == FT_F32 || T == FT_BF16S) {
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

FINLINE int FFN(esize)(int T) { return T == FT_F32 || T == FT_BF16S ? 4 : 2; }

FINLINE float FFN(fma1)(float a, float b, float c) {
	return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

// One tile: weight rows w + i·wrb (i < RM), activation rows x + j·ldx
// (j < RN), both starting at the first column of this block; columns
// [0, nk) of the lane order (nk a multiple of the step). first: start from
// zero, else from st; last: reduce, add the tail columns [nk, nk + ntail)
// in order and write y[j·ldy + i], else store the lanes to st. st holds
// output (i, j)'s 16 lanes at st + i·sti + j·16. T is FT_F32, FT_F16,
// FT_BF16 (raw weights) or FT_BF16S (BF16 weights already widened to F32
// in the kernel order of the activations, by packw).
FINLINE void FFN(tile)(int T, int RM, int RN, const uint8_t *w, size_t wrb, const float *x, size_t ldx,
	int nk, int ntail, float *st, size_t sti, int first, int last, float *y, size_t ldy) {
	const int es = FFN(esize)(T);
	FV acc[FK_MM][FK_MN][FK_NH];
#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 8
		for (int j = 0; j < RN; j++)
#pragma GCC unroll 2
			for (int h = 0; h < FK_NH; h++)
				acc[i][j][h] = first ? FV_ZERO() : FV_LOAD(st + i * sti + j * 16 + h * FW);
	if (T == FT_F32 || T == FT_F16) {
		for (int k = 0; k < nk; k += 16) {
#pragma GCC unroll 2
			for (int h = 0; h < FK_NH; h++) {
				FV wv[FK_MM];
#pragma GCC unroll 8
				for (int i = 0; i < RM; i++) {
					wv[i] = FLOADW(T, w + i * wrb + (size_t)(k + h * FW) * es);
					FK_REG(wv[i]);
				}
#pragma GCC unroll 8
				for (int j = 0; j < RN; j++) {
					FV xv = FV_LOAD(x + j * ldx + k + h * FW);
					FK_REG(xv);
#pragma GCC unroll 8
					for (int i = 0; i < RM; i++)
						acc[i][j][h] = FV_FMA(wv[i], xv, acc[i][j][h]);
				}
			}
		}
	} else {
		for (int k = 0; k < nk; k += 32) {
#pragma GCC unroll 2
			for (int h = 0; h < FK_NH; h++) {
				// all odd-column fmas, then all even ones: the activation
				// vectors stay in registers, the weights are split one
				// row at a time from L1
				const uint8_t *wk = w + (size_t)(k + 2 * h * FW) * 2;
				const float *wf = (const float *)w + k + h * FW; // FT_BF16S
				FV xv[FK_MN];
#pragma GCC unroll 8
				for (int j = 0; j < RN; j++) {
					xv[j] = FV_LOAD(x + j * ldx + k + h * FW);
					FK_REG(xv[j]);
				}
#pragma GCC unroll 8
				for (int i = 0; i < RM; i++) {
					FV wo = T == FT_BF16S ? FV_LOAD((const float *)((const uint8_t *)wf + i * wrb))
							      : FLOADBF_ODD(wk + i * wrb);
					FK_REG(wo);
#pragma GCC unroll 8
					for (int j = 0; j < RN; j++)
						acc[i][j][h] = FV_FMA(wo, xv[j], acc[i][j][h]);
				}
#pragma GCC unroll 8
				for (int j = 0; j < RN; j++) {
					xv[j] = FV_LOAD(x + j * ldx + k + 16 + h * FW);
					FK_REG(xv[j]);
				}
#pragma GCC unroll 8
				for (int i = 0; i < RM; i++) {
					FV we = T == FT_BF16S ? FV_LOAD((const float *)((const uint8_t *)(wf + 16) + i * wrb))
							      : FLOADBF_EVEN(wk + i * wrb);
					FK_REG(we);
#pragma GCC unroll 8
					for (int j = 0; j < RN; j++)
						acc[i][j][h] = FV_FMA(we, xv[j], acc[i][j][h]);
				}
			}
		}
	}
	if (!last) {
#pragma GCC unroll 8
		for (int i = 0; i < RM; i++)
#pragma GCC unroll 8
			for (int j = 0; j < RN; j++)
#pragma GCC unroll 2
				for (int h = 0; h < FK_NH; h++)
					FV_STORE(st + i * sti + j * 16 + h * FW, acc[i][j][h]);
		return;
	}
#pragma GCC unroll 8
	for (int i = 0; i < RM; i++)
#pragma GCC unroll 8
		for (int j = 0; j < RN; j++) {
			float s = FV_RED16(acc[i][j]);
			for (int k = nk; k < nk + ntail; k++)
				s = FFN(fma1)(FFN(load1)(T, w + i * wrb + (size_t)k * es), x[j * ldx + k], s);
			y[j * ldy + i] = s;
		}
}

typedef void (*FFN(tilefn))(const uint8_t *w, size_t wrb, const float *x, size_t ldx, int nk, int ntail,
	float *st, size_t sti, int first, int last, float *y, size_t ldy);

#define FK_DEFTILE(T, RM, RN)                                                                        \
	static __attribute__((noinline)) void FFN(tile_##T##_##RM##x##RN)(const uint8_t *w, size_t wrb, \
		const float *x, size_t ldx, int nk, int ntail, float *st, size_t sti, int first, int last,  \
		float *y, size_t ldy) {                                                                      \
		FFN(tile)(T, RM, RN, w, wrb, x, ldx, nk, ntail, st, sti, first, last, y, ldy);              \
	}
#define FK_TABENTRY(T, RM, RN) [RM - 1][RN - 1] = FFN(tile_##T##_##RM##x##RN),

FK_TILES_0(FK_DEFTILE)
FK_TILES_31(FK_DEFTILE)

// Tile tables, indexed [RM-1][RN-1] (shapes not listed are unused): F32
// (and F16 weights widened by packw), BF16S for BF16 weights split by
// packw.
#define FK_TAB(T) static const FFN(tilefn) FFN(tab_##T)[8][8] = { FK_TILES_##T(FK_TABENTRY) };
FK_TAB(0)
FK_TAB(31)

#ifndef FK_KC
#define FK_KC 1024
#endif
#ifndef FK_JB
#define FK_JB 48
#endif
#ifndef FK_RB
#define FK_RB 48
#endif

// packw widens rm F16 or BF16 weight rows, columns [k0, k0 + nk + ntail),
// into b (row stride FK_KC + 32 floats): F16 in column order, BF16 in the
// activations' kernel order (each 32-column group: odd columns, then even;
// the tail in order). Exact, so the F32/BF16S tiles on b compute what the
// F16/BF16 tiles on w would.
static void FFN(packw)(int T, const uint8_t *w, size_t wrb, int rm, int k0, int nk, int ntail, float *b) {
	for (int i = 0; i < rm; i++) {
		const uint8_t *src = w + (size_t)i * wrb + (size_t)k0 * 2;
		float *d = b + (size_t)i * (FK_KC + 32);
		int k = 0;
		if (T == FT_F16) {
			for (; k + 8 <= nk + ntail; k += 8)
				_mm256_storeu_ps(d + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * k))));
		} else {
			const __m256i hi = _mm256_set1_epi32((int)0xffff0000);
			for (; k < nk; k += 32)
				for (int h = 0; h < 2; h++) {
					const __m256i raw = _mm256_loadu_si256((const __m256i *)(src + 2 * (k + 16 * h)));
					_mm256_storeu_ps(d + k + 8 * h, _mm256_castsi256_ps(_mm256_and_si256(raw, hi)));
					_mm256_storeu_ps(d + k + 16 + 8 * h, _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16)));
				}
		}
		for (; k < nk + ntail; k++)
			d[k] = FFN(load1)(T, src + 2 * k);
	}
}

#ifndef FK_S
#define FK_S 4 // matrix-vector row streams
#endif

// S weight rows w + s·sb (s < S), all columns: nk in the lane order, the
// ntail tail columns in order; y[s·ys].
FINLINE void FFN(mvrows)(int T, int S, const uint8_t *w, size_t sb, const float *x, int nk, int ntail, float *y,
	size_t ys) {
	const int es = FFN(esize)(T);
	FV acc[FK_S][FK_NH];
#pragma GCC unroll 8
	for (int s = 0; s < S; s++)
#pragma GCC unroll 2
		for (int h = 0; h < FK_NH; h++)
			acc[s][h] = FV_ZERO();
	if (T == FT_F32 || T == FT_F16) {
		for (int k = 0; k < nk; k += 16) {
#pragma GCC unroll 2
			for (int h = 0; h < FK_NH; h++) {
				FV xv = FV_LOAD(x + k + h * FW);
				FK_REG(xv);
#pragma GCC unroll 8
				for (int s = 0; s < S; s++)
					acc[s][h] = FV_FMA(FLOADW(T, w + s * sb + (size_t)(k + h * FW) * es), xv, acc[s][h]);
			}
		}
	} else {
		for (int k = 0; k < nk; k += 32) {
#pragma GCC unroll 2
			for (int h = 0; h < FK_NH; h++) {
				const uint8_t *wk = w + (size_t)(k + 2 * h * FW) * 2;
				FV xo = FV_LOAD(x + k + h * FW), xe = FV_LOAD(x + k + 16 + h * FW);
				FK_REG(xo);
				FK_REG(xe);
#pragma GCC unroll 8
				for (int s = 0; s < S; s++) {
					acc[s][h] = FV_FMA(FLOADBF_ODD(wk + s * sb), xo, acc[s][h]);
					acc[s][h] = FV_FMA(FLOADBF_EVEN(wk + s * sb), xe, acc[s][h]);
				}
			}
		}
	}
#pragma GCC unroll 8
	for (int s = 0; s < S; s++) {
		float r = FV_RED16(acc[s]);
		for (int k = nk; k < nk + ntail; k++)
			r = FFN(fma1)(FFN(load1)(T, w + s * sb + (size_t)k * es), x[k], r);
		y[s * ys] = r;
	}
}

typedef void (*FFN(mvfn))(const uint8_t *w, size_t sb, const float *x, int nk, int ntail, float *y, size_t ys);
#define FK_DEFMV(T, S)                                                                                  \
	static __attribute__((noinline)) void FFN(mv_##T##_##S)(const uint8_t *w, size_t sb, const float *x, int nk, \
		int ntail, float *y, size_t ys) {                                                               \
		FFN(mvrows)(T, S, w, sb, x, nk, ntail, y, ys);                                                  \
	}
FK_DEFMV(0, 1)
FK_DEFMV(0, FK_S)
FK_DEFMV(1, 1)
FK_DEFMV(1, FK_S)
FK_DEFMV(30, 1)
FK_DEFMV(30, FK_S)

// Matrix-vector over rows [r0, r1): FK_S runs of equal length read side by
// side, one row of each at a time (runs kept off 4 KiB multiples apart,
// streams.h); the rows left over alone.
static void FFN(mv)(int T, const uint8_t *w, size_t wrb, const float *x, int cols, int kmain, float *y, int r0, int r1) {
	FFN(mvfn) one = T == FT_F32 ? FFN(mv_0_1) : T == FT_F16 ? FFN(mv_1_1) : FFN(mv_30_1);
	FFN(mvfn) many = T == FT_F32 ? FFN(mv_0_FK_S) : T == FT_F16 ? FFN(mv_1_FK_S) : FFN(mv_30_FK_S);
	const int len = mica_stream_len(r1 - r0, FK_S, wrb);
	for (int k = 0; k < len; k++)
		many(w + (size_t)(r0 + k) * wrb, (size_t)len * wrb, x, kmain, cols - kmain, y + r0 + k, len);
	for (int r = r0 + FK_S * len; r < r1; r++)
		one(w + (size_t)r * wrb, 0, x, kmain, cols - kmain, y + r, 0);
}

// Y[j*ldy + r] for j < n, r0 <= r < r1; T is the weight type (0 F32,
// 1 F16, 30 BF16), x the prepared activations (for BF16 in the kernel
// order), n×cols; xpk NULL, or (FK_GEMM's F16 and F32 products) the
// activations already packed for it by the including file. Returns 0, or -1 when
// scratch memory ran out.
int FFN(mica_fmul)(int T, const uint8_t *w, size_t wrb, const float *x, int n, int cols, float *y,
	size_t ldy, int r0, int r1, const void *xpk) {
	const int step = T == FT_BF16 ? 32 : 16;
	const int kmain = cols / step * step;
	if (n == 1) {
		FFN(mv)(T, w, wrb, x, cols, kmain, y, r0, r1);
		return 0;
	}
#ifdef FK_GEMM
	if (n > FK_JB) // more than one activation block: the including file's kernel
		return FK_GEMM(T, w, wrb, x, n, cols, y, ldy, r0, r1, xpk);
#else
	(void)xpk;
#endif
	const FFN(tilefn)(*tab)[8] = T == FT_BF16 ? FFN(tab_31) : FFN(tab_0);
	const int RM = T == FT_BF16 ? FK_RMB : FK_RM, RN = T == FT_BF16 ? FK_RNB : FK_RN;
	// column blocks: as few as FK_KC allows, of equal size (multiples of step)
	int nkb = (kmain + FK_KC - 1) / FK_KC;
	if (nkb < 1)
		nkb = 1;
	int kc = (kmain / step + nkb - 1) / nkb * step;
	if (kc < step)
		kc = step;
	// scratch, one set per OS thread, kept: lane states between column
	// blocks, widened F16/BF16 weight rows
	static _Thread_local float *st, *wb;
	if (nkb > 1 && !st) {
		st = aligned_alloc(64, sizeof(float) * 16 * FK_JB * FK_RB);
		if (!st)
			return -1;
	}
	const size_t wbs = (size_t)(FK_KC + 32) * 4; // bytes per widened row
	if (T != FT_F32 && !wb) {
		wb = aligned_alloc(64, wbs * FK_MM);
		if (!wb)
			return -1;
	}
	const size_t sti = 16 * FK_JB;
	for (int jb = 0; jb < n; jb += FK_JB) {
		const int jn = n - jb < FK_JB ? n - jb : FK_JB;
		for (int rb = r0; rb < r1; rb += FK_RB) {
			const int rn = r1 - rb < FK_RB ? r1 - rb : FK_RB;
			for (int k0 = 0; k0 < kmain || k0 == 0; k0 += kc) {
				const int k1 = kmain - k0 < kc ? kmain : k0 + kc;
				const int first = k0 == 0, last = k1 == kmain;
				const int ntail = last ? cols - kmain : 0;
				for (int r = 0; r < rn; r += RM) {
					const int rm = rn - r < RM ? rn - r : RM;
					const uint8_t *wr = w + (size_t)(rb + r) * wrb + (size_t)k0 * (T == FT_F32 ? 4 : 2);
					size_t wrs = wrb;
					if (T != FT_F32) {
						FFN(packw)(T, w + (size_t)(rb + r) * wrb, wrb, rm, k0, k1 - k0, ntail, wb);
						wr = (const uint8_t *)wb;
						wrs = wbs;
					}
					for (int j = 0; j < jn; j += RN) {
						const int jm = jn - j < RN ? jn - j : RN;
						tab[rm - 1][jm - 1](wr, wrs, x + (size_t)(jb + j) * cols + k0, cols, k1 - k0, ntail,
							st + (size_t)r * sti + (size_t)j * 16, sti, first, last,
							y + (size_t)(jb + j) * ldy + rb + r, ldy);
					}
				}
				if (last)
					break;
			}
		}
	}
	return 0;
}
