// The AVX2 lane mask and 8 × 8 register transpose the direct convolution, the tiled transposes
// and the stride-2 Winograd input transform share (included inside their x86-64 sections; not
// part of the public header).
#ifndef KERNELS_AVX2_LANES_H
#define KERNELS_AVX2_LANES_H

#include <immintrin.h>

/// The mask that keeps the first `count` (0...8) lanes, all bits set in each kept lane, as
/// `_mm256_maskload_ps` and `_mm256_maskstore_ps` want.
__attribute__((target("avx2,fma"))) static inline __m256i lanesAVX2(long count) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), index);
}

/// Transposes the 8 × 8 tile in `v` in place: pairs of rows interleave (unpack), then
/// quadruples (shuffle), then the two 128-bit halves trade places.
__attribute__((target("avx2,fma"))) static inline void transpose8(__m256 v[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);      // per half: a0 b0 a1 b1
        t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);  // per half: a2 b2 a3 b3
    }
    for (int i = 0; i < 8; i += 4) {
        v[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);      // a0 b0 c0 d0 | a4 b4 c4 d4
        v[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);  // a1 b1 c1 d1 | a5 b5 c5 d5
        v[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        v[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int r = 0; r < 4; r++) {
        t[r] = _mm256_permute2f128_ps(v[r], v[4 + r], 0x20);      // column r
        t[4 + r] = _mm256_permute2f128_ps(v[r], v[4 + r], 0x31);  // column 4 + r
    }
    for (int r = 0; r < 8; r++) v[r] = t[r];
}

#endif
