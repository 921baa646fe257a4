//go:build cgo && amd64

// AVX2 (+FMA, F16C) quantized kernels: the integer dot products use
// vpmaddubsw/vpmaddwd (the unsigned×signed byte multiply; signed weights go
// through vpsignb so the unsigned side is |w|).
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC push_options
// Exact IEEE operations as written: no contraction of a*b+c into an FMA
// (explicit FMAs only), so every tile shape computes identical values.
#pragma GCC optimize("fp-contract=off")
#pragma GCC target("avx2,fma,f16c")

#define QK_ISA avx2
#define QDOT_S(q, y) _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)), _mm256_set1_epi16(1))
#define QDOT_U(q, y) _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1))
#define QDOT_A(ay, q, y) _mm256_madd_epi16(_mm256_maddubs_epi16(ay, _mm256_sign_epi8(q, y)), _mm256_set1_epi16(1))
#define QSCALE(s0, s1) _mm256_set_m128i(_mm_set1_epi16((short)(s1)), _mm_set1_epi16((short)(s0)))
#define QSDOT_U(a, v, sc) _mm256_madd_epi16(_mm256_maddubs_epi16(a, v), sc)
#define QSDOT_S(a, v, sc) _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(v, a)), sc)
#define QDOT_U2(a0, y0, a1, y1) _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(a0, y0), _mm256_maddubs_epi16(a1, y1)), _mm256_set1_epi16(1))
// The AVX2 build also has the Q8_0 batch kernel on int16 products
// (qkern_batch.h: on AVX2 the byte dot product's vpsignb/vpmaddubsw/
// vpmaddwd costs more than two vpmaddwd) and the K-quant batch kernel
// (qkern_batchk.h).
#define QK_BATCH_WIDE 1
#include "qkern.h"

#pragma GCC pop_options
