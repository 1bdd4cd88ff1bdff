#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "AVX2Lanes.h"

// A matrix transpose by tiles held in registers (16 × 16 with AVX-512, 8 × 8 with AVX2): the
// strided layer's weight gradient needs each image's output gradient with the filters contiguous
// (`[position][filter]`), and a scalar transpose of its ~100 000 floats per image, reading across
// 128 planes, cost about as much as a tenth of the products it feeds; the channel-last
// convolution transposes each image in and its output out.

// ---- AVX2 + FMA: 8 × 8 tiles in YMM registers.

#define TARGET __attribute__((target("avx2,fma")))

#define NAME(x) x##_avx2
#define VEC __m256
#define TILE 8
#define MASK __m256i
#define V_MASK(count) lanesAVX2(count)
#define V_MASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define V_MASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define V_ZERO() _mm256_setzero_ps()
#define TRANSPOSE_TILE(v) transpose8(v)
#include "TransposeTemplate.h"
#undef TARGET
#undef NAME
#undef VEC
#undef TILE
#undef MASK
#undef V_MASK
#undef V_MASKLOAD
#undef V_MASKSTORE
#undef V_ZERO
#undef TRANSPOSE_TILE

// ---- AVX-512 (F): 16 × 16 tiles in ZMM registers.

#define TARGET __attribute__((target("avx512f,avx2,fma")))

/// Transposes the 16 × 16 tile in `v` in place: lane j of v[i] moves to lane i of v[j]. Pairs
/// of rows interleave (unpack), then quadruples (shuffle), then 128-bit lanes, twice.
TARGET static inline void transpose16(__m512 v[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);      // per 128-bit lane: a0 b0 a1 b1
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);  // per 128-bit lane: a2 b2 a3 b3
    }
    for (int i = 0; i < 16; i += 4) {
        v[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);      // a0 b0 c0 d0
        v[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);  // a1 b1 c1 d1
        v[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        v[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    // v[4q + r] now holds, in its 128-bit lane l, column 4l + r of rows 4q … 4q + 3.
    for (int r = 0; r < 4; r++) {
        t[r] = _mm512_shuffle_f32x4(v[r], v[4 + r], 0x88);       // lanes 0, 2 of rows 0–3, then of rows 4–7
        t[4 + r] = _mm512_shuffle_f32x4(v[r], v[4 + r], 0xDD);   // lanes 1, 3
        t[8 + r] = _mm512_shuffle_f32x4(v[8 + r], v[12 + r], 0x88);
        t[12 + r] = _mm512_shuffle_f32x4(v[8 + r], v[12 + r], 0xDD);
    }
    for (int r = 0; r < 4; r++) {
        v[r] = _mm512_shuffle_f32x4(t[r], t[8 + r], 0x88);            // column r
        v[8 + r] = _mm512_shuffle_f32x4(t[r], t[8 + r], 0xDD);        // column 8 + r
        v[4 + r] = _mm512_shuffle_f32x4(t[4 + r], t[12 + r], 0x88);   // column 4 + r
        v[12 + r] = _mm512_shuffle_f32x4(t[4 + r], t[12 + r], 0xDD);  // column 12 + r
    }
}

#define NAME(x) x##_avx512
#define VEC __m512
#define TILE 16
#define MASK __mmask16
#define V_MASK(count) ((__mmask16)((1u << (count)) - 1u))
#define V_MASKLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_MASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_ZERO() _mm512_setzero_ps()
#define TRANSPOSE_TILE(v) transpose16(v)
#include "TransposeTemplate.h"

#else

// Never called: the Swift side checks kernels_simd_has_avx2_fma() (and _avx512f()) first.
#define TRANSPOSE_STUBS(SUFFIX)                                                                             \
    void kernels_transpose_##SUFFIX(const float *source, long rows, long columns, long sourceStride,        \
                                    float *destination, long destinationStride) {                           \
        (void)source; (void)rows; (void)columns; (void)sourceStride; (void)destination;                     \
        (void)destinationStride;                                                                            \
    }                                                                                                       \
    void kernels_pack_taps_##SUFFIX(const float *source, long rows, long sourceStride, long channels,       \
                                    long taps, long columnBegin, long columnEnd, float *destination,        \
                                    long width) {                                                           \
        (void)source; (void)rows; (void)sourceStride; (void)channels; (void)taps; (void)columnBegin;        \
        (void)columnEnd; (void)destination; (void)width;                                                    \
    }
TRANSPOSE_STUBS(avx2)
TRANSPOSE_STUBS(avx512)

#endif
