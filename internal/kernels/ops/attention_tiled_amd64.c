//go:build cgo && amd64

// The tiled flash-attention kernel (AVX2+FMA+F16C, and AVX-512F): many
// queries against many keys, without a score matrix. See attention_tiled.go
// for the algorithm; the plain-Go reference is attentionRef. The kernel's
// body is attention_tiled_body.h, included here once per instruction set.
//
// A tile is up to `bq` rows (query, head) sharing one kv head, cut into
// strips of 3 vectors of rows (24 with AVX2, 48 with AVX-512). Everything
// runs with the rows along the vector lanes ("transposed"): the strip's
// queries are packed once as Qt[e][lane] (times the scale), the scores of
// a block of keys are St[key][lane], the output accumulator is
// Ot[channel][lane]. Keys and values are read in their natural layout, one
// broadcast element at a time; F16 rows are converted to F32 first, and a
// block with empty cells (negative positions) is compacted, once per tile.
// The row max, row sum and rescaling of the online softmax are then plain
// vertical vector operations. Both products are register-blocked
// micro-kernels of 4 keys or channels by 3 vectors of rows (12
// accumulators, 3 loads and 4 broadcasts per 12 FMAs).
//
// Each lane's arithmetic is the same whatever its tile, strip, lane or
// instruction set, so any split of the tiles gives the same bits, and so
// do the AVX2 and AVX-512 kernels. The AVX-512 kernel was written on a
// machine without AVX-512 (the avx512emu test build now runs it there,
// through SIMDe); the tests compare its
// bits with the AVX2 kernel's where the CPU has it, and check its 16-lane
// layout everywhere through emu16 (16 lanes as pairs of AVX2 vectors).

// No contraction of separate multiplies and adds into FMAs: every FMA is
// written out, so all three instruction sets round alike.
#pragma GCC optimize("fp-contract=off")

#ifdef MICA_AVX512_EMU
// Test builds (go test -tags avx512emu, emu512.go): the AVX-512 kernel's
// instructions come from SIMDe's portable implementations, so it runs
// (slowly) on a CPU without AVX-512.
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
// What SIMDe 0.7 lacks, from two AVX2 halves.
static inline __m512i emu_srai_epi32(__m512i x, int k) {
	const __m256i lo = _mm256_srai_epi32(_mm512_castsi512_si256(x), k);
	const __m256i hi = _mm256_srai_epi32(_mm512_extracti64x4_epi64(x, 1), k);
	return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
static inline __m512i emu_cvtps_epi32(__m512 x) {
	const __m256i lo = _mm256_cvtps_epi32(_mm512_castps512_ps256(x));
	const __m256i hi = _mm256_cvtps_epi32(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
	return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
#define _mm512_srai_epi32 emu_srai_epi32
#define _mm512_cvtps_epi32 emu_cvtps_epi32
#else
#include <immintrin.h>
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TA_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TA_INLINE static inline __attribute__((always_inline)) TA_AVX2
#define TA_QSMAX 48 /* the widest strip (AVX-512) */
#define TA_BK 64     /* keys per block */
#define TA_BKMAX 128 /* a call with at most this many keys runs them as one block */
#define TA_MAXBQ 192 /* the most rows per tile */

typedef struct {
	long nhead, nkvhead, d, dv, nkv, nq, bq;
	long q_row, k_row, k_head, v_row, v_head, o_row;
	float scale, softcap;
	int causal, window, kf16, vf16;
} mica_tattn_cfg;

static TA_AVX2 void ta_cvt(float *dst, const uint16_t *src, long n) {
	long e = 0;
	for (; e + 8 <= n; e += 8) _mm256_storeu_ps(dst + e, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + e))));
	for (; e < n; e++) dst[e] = _cvtsh_ss(src[e]);
}

// ta_transpose8 transposes the 8x8 block r[0..7] in place.
TA_INLINE void ta_transpose8(__m256 r[8]) {
	const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
	const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
	const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
	const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
	const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
	const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
	const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
	const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
	r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
	r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
	r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
	r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// ta_pack_q: qs[e][z] = rows[z][e]*scale for the 8 rows of a lane group
// (qs rows qs_stride apart).
static TA_AVX2 void ta_pack_q(const float *rows[8], long d, float scale, float *qs, long qs_stride) {
	const __m256 vs = _mm256_set1_ps(scale);
	long e = 0;
	for (; e + 8 <= d; e += 8) {
		__m256 r[8];
		for (int z = 0; z < 8; z++) r[z] = _mm256_loadu_ps(rows[z] + e);
		ta_transpose8(r);
		for (int x = 0; x < 8; x++) _mm256_storeu_ps(qs + (e + x) * qs_stride, _mm256_mul_ps(r[x], vs));
	}
	for (; e < d; e++)
		for (int z = 0; z < 8; z++) qs[e * qs_stride + z] = rows[z][e] * scale;
}

// ta_store_out: rows[z][e] = os[e][z]*inv[z] for the n (<= 8) rows of a
// lane group (os rows os_stride apart).
static TA_AVX2 void ta_store_out(float *rows[8], int n, long dv, const float *os, const float *inv, long os_stride) {
	long e = 0;
	if (n == 8) {
		for (; e + 8 <= dv; e += 8) {
			__m256 r[8];
			for (int x = 0; x < 8; x++) r[x] = _mm256_loadu_ps(os + (e + x) * os_stride);
			ta_transpose8(r);
			for (int z = 0; z < 8; z++) _mm256_storeu_ps(rows[z] + e, _mm256_mul_ps(r[z], _mm256_set1_ps(inv[z])));
		}
	}
	for (; e < dv; e++)
		for (int z = 0; z < n; z++) rows[z][e] = os[e * os_stride + z] * inv[z];
}

// ta_tile_block maps tile index t of a kv head's tiles (n of them) to a
// row block, alternating from both ends (0, n-1, 1, n-2, …) so that a
// contiguous range of tiles gets a fair share of a causal call's work.
static inline long ta_tile_block(long t, long n) { return (t & 1) ? n - 1 - t / 2 : t / 2; }


// ---------------------------------------------------------------------------
// AVX2: 8 lanes, vector masks

#define TB_ISA avx2
#define TB_TARGET TA_AVX2
#define VL 8
#define V __m256
#define VI __m256i
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps(p, x)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#define VROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define VCOPYSIGN(t, x) _mm256_or_ps(t, _mm256_and_ps(_mm256_set1_ps(-0.0f), x))
#define VCVTI(x) _mm256_cvtps_epi32(x)
#define VSRAI1(x) _mm256_srai_epi32(x, 1)
#define VSUBI(a, b) _mm256_sub_epi32(a, b)
#define VPOW2(k) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23))
#define VLOADI(p) _mm256_loadu_si256((const __m256i *)(p))
#define VSET1I(x) _mm256_set1_epi32(x)
#define MT __m256
#define MNONE() _mm256_setzero_ps()
#define MALL() _mm256_castsi256_ps(_mm256_set1_epi32(-1))
#define MCMPGTI(a, b) _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b))
#define MCMPEQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define MOR(a, b) _mm256_or_ps(a, b)
#define MBLEND(m, x, y) _mm256_blendv_ps(x, y, m) /* m ? y : x */
#include "attention_tiled_body.h"
#undef TB_ISA
#undef TB_TARGET
#undef VL
#undef V
#undef VI
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VSET1
#undef VFMA
#undef VFNMA
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VMAX
#undef VMIN
#undef VROUND
#undef VABS
#undef VCOPYSIGN
#undef VCVTI
#undef VSRAI1
#undef VSUBI
#undef VPOW2
#undef VLOADI
#undef VSET1I
#undef MT
#undef MNONE
#undef MALL
#undef MCMPGTI
#undef MCMPEQ
#undef MOR
#undef MBLEND

// ---------------------------------------------------------------------------
// AVX-512F: 16 lanes, mask registers. (Only AVX-512F instructions: the
// float and/or of AVX-512DQ are done on integers.)

#define TB_ISA avx512
#ifdef MICA_AVX512_EMU
#define TB_TARGET TA_AVX2
#else
#define TB_TARGET __attribute__((target("avx512f,avx2,fma,f16c")))
#endif
#define VL 16
#define V __m512
#define VI __m512i
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps(p, x)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
#define VROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VABS(x) _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32((int)0x80000000), _mm512_castps_si512(x)))
#define VCOPYSIGN(t, x)                                                                                               \
	_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t),                                                  \
	                                    _mm512_and_si512(_mm512_set1_epi32((int)0x80000000), _mm512_castps_si512(x))))
#define VCVTI(x) _mm512_cvtps_epi32(x)
#define VSRAI1(x) _mm512_srai_epi32(x, 1)
#define VSUBI(a, b) _mm512_sub_epi32(a, b)
#define VPOW2(k) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23))
#define VLOADI(p) _mm512_loadu_si512((const void *)(p))
#define VSET1I(x) _mm512_set1_epi32(x)
#define MT __mmask16
#define MNONE() ((__mmask16)0)
#define MALL() ((__mmask16)0xffff)
#define MCMPGTI(a, b) _mm512_cmpgt_epi32_mask(a, b)
#define MCMPEQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define MOR(a, b) ((__mmask16)((a) | (b)))
#define MBLEND(m, x, y) _mm512_mask_blend_ps(m, x, y) /* m ? y : x */
#include "attention_tiled_body.h"

#undef TB_ISA
#undef TB_TARGET
#undef VL
#undef V
#undef VI
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VSET1
#undef VFMA
#undef VFNMA
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VMAX
#undef VMIN
#undef VROUND
#undef VABS
#undef VCOPYSIGN
#undef VCVTI
#undef VSRAI1
#undef VSUBI
#undef VPOW2
#undef VLOADI
#undef VSET1I
#undef MT
#undef MNONE
#undef MALL
#undef MCMPGTI
#undef MCMPEQ
#undef MOR
#undef MBLEND

// ---------------------------------------------------------------------------
// emu16: 16 lanes as pairs of AVX2 vectors. Only the tests use it: it runs
// the body with the AVX-512 kernel's strip layout (48 rows) on machines
// without AVX-512, where the AVX-512 kernel itself cannot run.

typedef struct { __m256 lo, hi; } ta_e16;
typedef struct { __m256i lo, hi; } ta_e16i;
#define E16_UN(name, op)                                                                                            \
	TA_INLINE ta_e16 name(ta_e16 a) { return (ta_e16){op(a.lo), op(a.hi)}; }
#define E16_BIN(name, op)                                                                                           \
	TA_INLINE ta_e16 name(ta_e16 a, ta_e16 b) { return (ta_e16){op(a.lo, b.lo), op(a.hi, b.hi)}; }
#define E16_BINI(name, op)                                                                                          \
	TA_INLINE ta_e16i name(ta_e16i a, ta_e16i b) { return (ta_e16i){op(a.lo, b.lo), op(a.hi, b.hi)}; }
TA_INLINE ta_e16 e16_set1(float x) { return (ta_e16){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
TA_INLINE ta_e16 e16_load(const float *p) { return (ta_e16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
TA_INLINE void e16_store(float *p, ta_e16 x) { _mm256_storeu_ps(p, x.lo), _mm256_storeu_ps(p + 8, x.hi); }
TA_INLINE ta_e16 e16_fma(ta_e16 a, ta_e16 b, ta_e16 c) {
	return (ta_e16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
TA_INLINE ta_e16 e16_fnma(ta_e16 a, ta_e16 b, ta_e16 c) {
	return (ta_e16){_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
}
E16_BIN(e16_mul, _mm256_mul_ps)
E16_BIN(e16_add, _mm256_add_ps)
E16_BIN(e16_sub, _mm256_sub_ps)
E16_BIN(e16_div, _mm256_div_ps)
E16_BIN(e16_max, _mm256_max_ps)
E16_BIN(e16_min, _mm256_min_ps)
E16_BIN(e16_or, _mm256_or_ps)
#define E16_ROUND1(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define E16_ABS1(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define E16_CMPEQ1(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define E16_COPYSIGN1(t, x) _mm256_or_ps(t, _mm256_and_ps(_mm256_set1_ps(-0.0f), x))
E16_UN(e16_round, E16_ROUND1)
E16_UN(e16_abs, E16_ABS1)
E16_BIN(e16_cmpeq, E16_CMPEQ1)
E16_BIN(e16_copysign, E16_COPYSIGN1)
E16_BINI(e16_subi, _mm256_sub_epi32)
TA_INLINE ta_e16i e16_cvti(ta_e16 x) { return (ta_e16i){_mm256_cvtps_epi32(x.lo), _mm256_cvtps_epi32(x.hi)}; }
TA_INLINE ta_e16i e16_srai1(ta_e16i x) { return (ta_e16i){_mm256_srai_epi32(x.lo, 1), _mm256_srai_epi32(x.hi, 1)}; }
#define E16_POW21(k) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23))
TA_INLINE ta_e16 e16_pow2(ta_e16i k) { return (ta_e16){E16_POW21(k.lo), E16_POW21(k.hi)}; }
TA_INLINE ta_e16i e16_loadi(const int32_t *p) {
	return (ta_e16i){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 8))};
}
TA_INLINE ta_e16i e16_set1i(int32_t x) { return (ta_e16i){_mm256_set1_epi32(x), _mm256_set1_epi32(x)}; }
TA_INLINE ta_e16 e16_gti(ta_e16i a, ta_e16i b) {
	return (ta_e16){_mm256_castsi256_ps(_mm256_cmpgt_epi32(a.lo, b.lo)), _mm256_castsi256_ps(_mm256_cmpgt_epi32(a.hi, b.hi))};
}
TA_INLINE ta_e16 e16_blend(ta_e16 m, ta_e16 x, ta_e16 y) {
	return (ta_e16){_mm256_blendv_ps(x.lo, y.lo, m.lo), _mm256_blendv_ps(x.hi, y.hi, m.hi)};
}
TA_INLINE ta_e16 e16_all(void) {
	const __m256 a = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
	return (ta_e16){a, a};
}

#define TB_ISA emu16
#define TB_TARGET TA_AVX2
#define VL 16
#define V ta_e16
#define VI ta_e16i
#define VZERO() e16_set1(0.0f)
#define VLOAD(p) e16_load(p)
#define VSTORE(p, x) e16_store(p, x)
#define VBCAST(p) e16_set1(*(p))
#define VSET1(x) e16_set1(x)
#define VFMA(a, b, c) e16_fma(a, b, c)
#define VFNMA(a, b, c) e16_fnma(a, b, c)
#define VMUL(a, b) e16_mul(a, b)
#define VADD(a, b) e16_add(a, b)
#define VSUB(a, b) e16_sub(a, b)
#define VDIV(a, b) e16_div(a, b)
#define VMAX(a, b) e16_max(a, b)
#define VMIN(a, b) e16_min(a, b)
#define VROUND(x) e16_round(x)
#define VABS(x) e16_abs(x)
#define VCOPYSIGN(t, x) e16_copysign(t, x)
#define VCVTI(x) e16_cvti(x)
#define VSRAI1(x) e16_srai1(x)
#define VSUBI(a, b) e16_subi(a, b)
#define VPOW2(k) e16_pow2(k)
#define VLOADI(p) e16_loadi(p)
#define VSET1I(x) e16_set1i(x)
#define MT ta_e16
#define MNONE() e16_set1(0.0f)
#define MALL() e16_all()
#define MCMPGTI(a, b) e16_gti(a, b)
#define MCMPEQ(a, b) e16_cmpeq(a, b)
#define MOR(a, b) e16_or(a, b)
#define MBLEND(m, x, y) e16_blend(m, x, y) /* m ? y : x */
#include "attention_tiled_body.h"
#undef TB_ISA
#undef TB_TARGET
#undef VL
#undef V
#undef VI
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VSET1
#undef VFMA
#undef VFNMA
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VMAX
#undef VMIN
#undef VROUND
#undef VABS
#undef VCOPYSIGN
#undef VCVTI
#undef VSRAI1
#undef VSUBI
#undef VPOW2
#undef VLOADI
#undef VSET1I
#undef MT
#undef MNONE
#undef MALL
#undef MCMPGTI
#undef MCMPEQ
#undef MOR
#undef MBLEND

long mica_tattn_scratch(long bq, long d, long dv) {
	return (bq + TA_QSMAX) * (d + dv) + TA_BKMAX * (TA_QSMAX + d + dv);
}
