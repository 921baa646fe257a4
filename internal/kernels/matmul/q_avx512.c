//go:build cgo && amd64

// AVX-512 VNNI quantized kernels: the same algorithms as q_avx2.c with the
// byte dot products done by vpdpbusd on 256-bit vectors (AVX512VL). Per
// 4-byte group vpdpbusd gives the exact int32 sum, so the integer results
// equal the AVX2 ones; only the scale multiply differs (vpmulld on int32).
#ifdef MICA_AVX512_EMU
// Test builds (go test -tags avx512emu, emu512.go): the AVX-512
// instructions come from SIMDe's portable implementations, so these kernels
// run (slowly) on a CPU without AVX-512.
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#else
#include <immintrin.h>
#endif
#include <stdint.h>
#include <string.h>

#pragma GCC push_options
// Exact IEEE operations as written: no contraction of a*b+c into an FMA
// (explicit FMAs only), so every tile shape computes identical values.
#pragma GCC optimize("fp-contract=off")
#ifndef MICA_AVX512_EMU
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#define QK_ISA vnni
#define QDOT_S(q, y) _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q))
#define QDOT_U(q, y) _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y)
#define QSCALE(s0, s1) _mm256_set_m128i(_mm_set1_epi32((int)(s1)), _mm_set1_epi32((int)(s0)))
#define QSDOT_U(a, v, sc) _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, v), sc)
#define QSDOT_S(a, v, sc) _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(a, a), _mm256_sign_epi8(v, a)), sc)
#define QDOT_U2(a0, y0, a1, y1) _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a0, y0), a1, y1)
#include "qkern.h"

#pragma GCC pop_options
