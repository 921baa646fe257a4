//go:build cgo && amd64

// AVX2+FMA+F16C direct convolution with F16 weights (conv_f16.go has the
// layout, the summation order and the plain-Go oracle).
//
// The input is first copied into a "band": F16-rounded, zero-padded,
// split into column phases for strides > 1, so that for any kernel tap k
// the activations of consecutive output pixels of one output row are
// consecutive floats at band + row base + off[k]. No im2col matrix is made.
// The weights of a group of output channels are widened to F32 once per
// call into a panel, 6 channels at a time, lane by lane: [lane j][t][mr]
// for the taps k = j + 16t, then the tail taps.
//
// The product: a tile of 16 consecutive output pixels (pack copies their
// values, tap by tap in the panel's order, into a small aligned buffer),
// times every 6-channel block of the group, a register tile of 6 channels
// × 16 pixels (12 accumulators: per step 2 activation loads, 6 broadcasts,
// 12 fmas). Every output keeps the 16 lane sums of matmul's F16 order —
// lane j sums the taps k ≡ j (mod 16), k < kmain, by fused multiply-adds in
// increasing k — here one lane after the other for the whole register tile
// (the sums wait in a small buffer), then the same reduction tree, the tail
// taps by fmas in order, and the bias added. Outputs are stored in place.
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC optimize("fp-contract=off")

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define CINLINE static inline __attribute__((always_inline))

typedef struct {
	long oc, k, kmain; // output channels; taps k = IC·KH·KW, kmain = k rounded down to 16
	long oh, ow;       // output size (of the whole image)
	long sh;           // band rows per output row (stride)
	long row_stride;   // floats per band row (all phases)
	long chunk;        // lane steps per tap chunk, for all tiles of a group together (≥ 1)
	long group;        // tiles per group (≥ 1)
} mica_conv_cfg;

// mica_conv_fill writes channels [c0, c1) of the band: rows r < hb, phases
// ph < sw, columns c < wq; value x[ic][iy0 + r][c·sw + ph − padw] rounded to
// F16 (as float32), 0 outside the image. plane is the band's channel stride.
AVX2 void mica_conv_fill(const float *x, long h, long w, float *band, long plane, long hb, long sw, long wq,
	long iy0, long padw, long c0, long c1) {
	for (long ic = c0; ic < c1; ic++) {
		const float *xp = x + (size_t)ic * h * w;
		for (long r = 0; r < hb; r++) {
			const long iy = iy0 + r;
			for (long ph = 0; ph < sw; ph++) {
				float *d = band + (size_t)ic * plane + (size_t)r * sw * wq + (size_t)ph * wq;
				if (iy < 0 || iy >= h) {
					memset(d, 0, sizeof(float) * wq);
					continue;
				}
				const float *s = xp + (size_t)iy * w;
				long c = 0;
				// columns before the image
				for (; c < wq && c * sw + ph - padw < 0; c++)
					d[c] = 0;
				if (sw == 1) {
					const long end = w + padw < wq ? w + padw : wq; // c < end: inside
					for (; c + 8 <= end; c += 8) {
						const __m256 v = _mm256_loadu_ps(s + c - padw);
						_mm256_storeu_ps(d + c, _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)));
					}
				}
				for (; c < wq; c++) {
					const long ix = c * sw + ph - padw;
					d[c] = ix < w ? _cvtsh_ss(_cvtss_sh(s[ix], _MM_FROUND_TO_NEAREST_INT)) : 0;
				}
			}
		}
	}
}

// mica_conv_panel widens the F16 weights of channel blocks [b0, b1) (6
// channels each, the last may have fewer) into a: block b at b·6·k floats,
// [j][t][mr] for the main taps k = j + 16t, then [k − kmain][mr]. Each
// block's rows are widened with vcvtph2ps into a scratch row set first,
// then permuted by plain copies (writes in order). Returns −1 when scratch
// memory ran out.
AVX2 int mica_conv_panel(const uint16_t *w, long oc, long k, long kmain, float *a, long b0, long b1) {
	const long T = kmain / 16;
	float *tmp = malloc(sizeof(float) * 6 * (size_t)k);
	if (!tmp)
		return -1;
	for (long b = b0; b < b1; b++) {
		const long oc0 = b * 6;
		const int mr = oc - oc0 < 6 ? (int)(oc - oc0) : 6;
		float *ab = a + (size_t)oc0 * k;
		for (int i = 0; i < mr; i++) {
			const uint16_t *wr = w + (size_t)(oc0 + i) * k;
			float *d = tmp + (size_t)i * k;
			long q = 0;
			for (; q + 8 <= k; q += 8)
				_mm256_storeu_ps(d + q, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + q))));
			for (; q < k; q++)
				d[q] = _cvtsh_ss(wr[q]);
		}
		float *d = ab;
		for (long j = 0; j < 16; j++)
			for (long t = 0; t < T; t++)
				for (int i = 0; i < mr; i++)
					*d++ = tmp[(size_t)i * k + j + 16 * t];
		for (long q = kmain; q < k; q++)
			for (int i = 0; i < mr; i++)
				*d++ = tmp[(size_t)i * k + q];
	}
	free(tmp);
	return 0;
}

// tile runs lane steps [t0, t0 + tc) of MR channels × 16 pixels: a is the
// channels' panel (T steps per lane), pk the packed activations of these
// steps ([j][tc][16], then the tail taps [ntail][16]), st the 16 lane sums
// of the 16 × MR outputs ([16][6][16]: zero-based when first, kept when not
// last). last: reduce, add the tail taps and the bias, and store npx ≤ 16
// pixels at y[i] for channel i.
CINLINE AVX2 void tile(int MR, const float *a, long T, long t0, long tc, const float *pk, long ntail, float *st,
	int first, int last, float *const *y, int npx, const float *bias) {
	float (*lanes)[6][16] = (float (*)[6][16])st;
	for (int j = 0; j < 16; j++) {
		__m256 acc[6][2];
#pragma GCC unroll 6
		for (int i = 0; i < MR; i++) {
			acc[i][0] = first ? _mm256_setzero_ps() : _mm256_load_ps(lanes[j][i]);
			acc[i][1] = first ? _mm256_setzero_ps() : _mm256_load_ps(lanes[j][i] + 8);
		}
		const float *aj = a + ((size_t)j * T + t0) * MR;
		const float *bj = pk + (size_t)j * tc * 16;
		for (long t = 0; t < tc; t++) {
			const __m256 b0 = _mm256_load_ps(bj + 16 * t), b1 = _mm256_load_ps(bj + 16 * t + 8);
#pragma GCC unroll 6
			for (int i = 0; i < MR; i++) {
				const __m256 wv = _mm256_broadcast_ss(aj + t * MR + i);
				acc[i][0] = _mm256_fmadd_ps(wv, b0, acc[i][0]);
				acc[i][1] = _mm256_fmadd_ps(wv, b1, acc[i][1]);
			}
		}
#pragma GCC unroll 6
		for (int i = 0; i < MR; i++) {
			_mm256_store_ps(lanes[j][i], acc[i][0]);
			_mm256_store_ps(lanes[j][i] + 8, acc[i][1]);
		}
	}
	if (!last)
		return;
	const float *at = a + (size_t)16 * T * MR;
	const float *bt = pk + (size_t)16 * tc * 16;
	for (int i = 0; i < MR; i++) {
		float out[16] __attribute__((aligned(32)));
		const __m256 bv = _mm256_set1_ps(bias ? bias[i] : 0.0f);
		for (int h = 0; h < 16; h += 8) {
			__m256 c[4];
			for (int j = 0; j < 4; j++) // lanes j + (j+8), then + (j+4 + j+12)
				c[j] = _mm256_add_ps(_mm256_add_ps(_mm256_load_ps(lanes[j][i] + h), _mm256_load_ps(lanes[j + 8][i] + h)),
					_mm256_add_ps(_mm256_load_ps(lanes[j + 4][i] + h), _mm256_load_ps(lanes[j + 12][i] + h)));
			__m256 s = _mm256_add_ps(_mm256_add_ps(c[0], c[2]), _mm256_add_ps(c[1], c[3]));
			for (long q = 0; q < ntail; q++)
				s = _mm256_fmadd_ps(_mm256_broadcast_ss(at + q * MR + i), _mm256_load_ps(bt + 16 * q + h), s);
			_mm256_store_ps(out + h, _mm256_add_ps(s, bv));
		}
		if (npx == 16) {
			_mm256_storeu_ps(y[i], _mm256_load_ps(out));
			_mm256_storeu_ps(y[i] + 8, _mm256_load_ps(out + 8));
		} else {
			memcpy(y[i], out, sizeof(float) * npx);
		}
	}
}

#define CONV_DEF(MR)                                                                                  \
	static __attribute__((noinline)) AVX2 void tile_##MR(const float *a, long T, long t0, long tc,  \
		const float *pk, long ntail, float *st, int first, int last, float *const *y, int npx,   \
		const float *bias) {                                                                     \
		tile(MR, a, T, t0, tc, pk, ntail, st, first, last, y, npx, bias);                        \
	}
CONV_DEF(1)
CONV_DEF(2)
CONV_DEF(3)
CONV_DEF(4)
CONV_DEF(5)
CONV_DEF(6)

typedef void (*tile_fn)(const float *, long, long, long, const float *, long, float *, int, int, float *const *, int,
	const float *);
static const tile_fn tiles[7] = {0, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

// pack copies the band values of npx ≤ 16 output pixels starting at output
// row oy, column ox (rows of ow pixels; pixels past the last are zero) to
// pk: lane steps [t0, t0 + tc) of every lane ([j][tc][16], off in lane
// order, T steps per lane), then when ntail > 0 the tail taps [ntail][16].
static AVX2 void pack(const mica_conv_cfg *c, const float *band, const int32_t *off, long oy0, long oy, long ox,
	int npx, long T, long t0, long tc, long ntail, float *pk) {
	const float *seg[16];
	int len[16], nseg = 0;
	for (int done = 0; done < npx; nseg++) {
		const int n = c->ow - ox < npx - done ? (int)(c->ow - ox) : npx - done;
		seg[nseg] = band + (size_t)(oy - oy0) * c->sh * c->row_stride + ox;
		len[nseg] = n;
		done += n;
		ox += n;
		if (ox == c->ow)
			ox = 0, oy++;
	}
	for (long j = 0; j <= 16; j++) {
		// j < 16: lane j's steps; j == 16: the tail taps
		const int32_t *o = j < 16 ? off + j * T + t0 : off + 16 * T;
		const long m = j < 16 ? tc : ntail;
		float *d = pk + (size_t)j * tc * 16;
		if (nseg == 1 && npx == 16) {
			const float *s = seg[0];
			for (long n = 0; n < m; n++) {
				_mm256_store_ps(d + 16 * n, _mm256_loadu_ps(s + o[n]));
				_mm256_store_ps(d + 16 * n + 8, _mm256_loadu_ps(s + o[n] + 8));
			}
			continue;
		}
		for (long n = 0; n < m; n++) {
			int p = 0;
			for (int q = 0; q < nseg; q++)
				for (int e = 0; e < len[q]; e++)
					d[16 * n + p++] = seg[q][o[n] + e];
			for (; p < 16; p++)
				d[16 * n + p] = 0;
		}
	}
}

// mica_conv_f16 computes the output channels [oc0, oc1) of the 16-pixel
// tiles [u0, u1) of the band whose first output row is oy0 (tile u:
// flattened output pixels oy0·ow + 16u … , up to row oy1). a is the panel
// of those channels (mica_conv_panel's blocks from channel oc0). y is the
// image's output [oc][oh][ow].
//
// Blocking: the tiles go in groups of c->group; the taps in chunks of at
// most c->chunk / (tiles in the group) steps per lane. Per chunk the
// group's activations are packed (≤ c->chunk·1 KiB: they stay in L2), then
// every 6-channel block runs over every tile of the group, so a block's
// weights for the chunk are read from L3 once per group and reused from L1.
// The lane sums of every (block, tile) wait in st between chunks. Returns
// 0, or −1 when scratch memory ran out.
AVX2 int mica_conv_f16(const mica_conv_cfg *c, const float *band, const float *a, const float *bias, float *y,
	const int32_t *off, long oy0, long oy1, long oc0, long oc1, long u0, long u1) {
	const long T = c->kmain / 16, ntail = c->k - c->kmain;
	const long G = c->group < 1 ? 1 : c->group;
	const long nob = (oc1 - oc0 + 5) / 6;
	static _Thread_local float *pk, *st;
	static _Thread_local size_t pcap, scap;
	const size_t stile = 16 * 6 * 16; // lane sums of one (block, tile)
	size_t pneed = 0;
	for (long g = 1; g <= G; g++) { // the largest packing of any group size
		const long lim = c->chunk / g > 0 ? c->chunk / g : 1;
		const long nch = T > lim ? (T + lim - 1) / lim : 1, tcmax = (T + nch - 1) / nch;
		const size_t n = (size_t)g * 16 * (16 * tcmax + ntail);
		pneed = n > pneed ? n : pneed;
	}
	const size_t sneed = (size_t)nob * G * stile;
	if (pcap < pneed) {
		free(pk);
		pk = aligned_alloc(64, (pneed * sizeof(float) + 63) / 64 * 64);
		pcap = pk ? pneed : 0;
	}
	if (scap < sneed) {
		free(st);
		st = aligned_alloc(64, sneed * sizeof(float));
		scap = st ? sneed : 0;
	}
	if (!pk || !st)
		return -1;
	const size_t plane_out = (size_t)c->oh * c->ow;
	const long pend = oy1 * c->ow;
	for (long ug = u0; ug < u1; ug += G) {
		const long ng = u1 - ug < G ? u1 - ug : G;
		const long lim = c->chunk / ng > 0 ? c->chunk / ng : 1;
		const long nch = T > lim ? (T + lim - 1) / lim : 1, tcmax = (T + nch - 1) / nch;
		const size_t ptile = (size_t)16 * (16 * tcmax + ntail); // packed floats per tile
		for (long ch = 0; ch < nch; ch++) {
			const long t0 = ch * tcmax, tc = T - t0 < tcmax ? T - t0 : tcmax;
			const int first = ch == 0, last = ch == nch - 1;
			for (long gi = 0; gi < ng; gi++) {
				const long pix = oy0 * c->ow + 16 * (ug + gi);
				const int npx = pend - pix < 16 ? (int)(pend - pix) : 16;
				pack(c, band, off, oy0, pix / c->ow, pix % c->ow, npx, T, t0, tc, last ? ntail : 0,
					pk + gi * ptile);
			}
			for (long o = oc0; o < oc1; o += 6) {
				const int mr = oc1 - o < 6 ? (int)(oc1 - o) : 6;
				for (long gi = 0; gi < ng; gi++) {
					const long pix = oy0 * c->ow + 16 * (ug + gi);
					const int npx = pend - pix < 16 ? (int)(pend - pix) : 16;
					float *yp[6];
					for (int i = 0; i < mr; i++)
						yp[i] = y + (size_t)(o + i) * plane_out + pix;
					tiles[mr](a + (size_t)(o - oc0) * c->k, T, t0, tc, pk + gi * ptile, last ? ntail : 0,
						st + ((size_t)(o - oc0) / 6 * G + gi) * stile, first, last, yp, npx,
						bias ? bias + o : NULL);
				}
			}
		}
	}
	return 0;
}
