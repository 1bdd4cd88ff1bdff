// The AVX2 lane mask the direct convolution and the tiled transposes share (included inside
// their x86-64 sections; not part of the public header).
#ifndef KERNELS_AVX2_LANES_H
#define KERNELS_AVX2_LANES_H

#include <immintrin.h>

/// The mask that keeps the first `count` (0...8) lanes, all bits set in each kept lane, as
/// `_mm256_maskload_ps` and `_mm256_maskstore_ps` want.
__attribute__((target("avx2,fma"))) static inline __m256i lanesAVX2(long count) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), index);
}

#endif
