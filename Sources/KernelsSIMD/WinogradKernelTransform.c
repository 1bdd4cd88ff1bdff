#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// Winograd's kernel transform U_ξ = G g Gᵀ, and its transpose for the weight gradient, as a
// 16 × 9 matrix applied to 16 kernels at a time: each kernel's nine taps gathered into lane j of
// nine vectors (or scattered back from them), the 16 positions written as plane streams. As
// an OpenBLAS GEMM (m = 16, k = 9) it spent most of its time packing its operands and zeroing
// the planes for beta = 0: a quarter of a 512-channel layer's forward pass on one thread.

#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define LANES 16
#define TAPS 9
#define POSITIONS 16

/// Lane j reads or writes kernel j's tap 0: kernels lie TAPS floats apart.
TARGET static inline __m512i kernelIndices(void) {
    return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                              _mm512_set1_epi32(TAPS));
}

TARGET void kernels_winograd_kernel_transform_avx512(const float *weight, long count, const float *matrix,
                                                     float *transformed, long planeStride) {
    const __m512i indices = kernelIndices();
    for (long first = 0; first < count; first += LANES) {
        const __mmask16 mask = count - first >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - first)) - 1);
        const float *kernels = weight + first * TAPS;
        __m512 taps[TAPS];
        for (int tap = 0; tap < TAPS; tap++) {
            taps[tap] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, indices, kernels + tap, 4);
        }
        for (int position = 0; position < POSITIONS; position++) {
            __m512 sum = _mm512_mul_ps(_mm512_set1_ps(matrix[position * TAPS]), taps[0]);
            for (int tap = 1; tap < TAPS; tap++) {
                sum = _mm512_fmadd_ps(_mm512_set1_ps(matrix[position * TAPS + tap]), taps[tap], sum);
            }
            _mm512_mask_storeu_ps(transformed + position * planeStride + first, mask, sum);
        }
    }
}

/// The same with the kernel matrix's axes swapped on the way: kernel (r, c) of a `rows ×
/// columns` grid (`weight[(r·columns + c)·9 + tap]`) lands at `c·rows + r` of each plane, 16 rows
/// of one column at a time (gathered 9·columns floats apart). For the backward-data pass, whose
/// products then read `U_ξ` row by row as the forward pass does: read across its rows (the
/// weight's own order), each of the product's steps touched a new cache line, and its products
/// ran a quarter slower than the forward pass's. The gathers cost this transform about twice
/// the other's (18% against 9.5% of 8×512×7×7 → 512's one-thread pass); call-by-call pairs'
/// median ratio of the pass the old way to this: 1.054 there, 1.021 at 256 channels over
/// 14×14, 1.043 at 128 over 28×28, 1.021 at 64 over 56×56.
TARGET void kernels_winograd_kernel_transform_swapped_avx512(const float *weight, long rows, long columns,
                                                             long columnBegin, long columnEnd, const float *matrix,
                                                             float *transformed, long planeStride) {
    const __m512i indices = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32((int)(columns * TAPS)));
    // Columns inner: the 16 rows' kernels are then read as 16 forward streams.
    for (long first = 0; first < rows; first += LANES) {
        const __mmask16 mask = rows - first >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << (rows - first)) - 1);
        for (long column = columnBegin; column < columnEnd; column++) {
            const float *kernels = weight + (first * columns + column) * TAPS;
            __m512 taps[TAPS];
            for (int tap = 0; tap < TAPS; tap++) {
                taps[tap] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, indices, kernels + tap, 4);
            }
            float *target = transformed + column * rows + first;
            for (int position = 0; position < POSITIONS; position++) {
                __m512 sum = _mm512_mul_ps(_mm512_set1_ps(matrix[position * TAPS]), taps[0]);
                for (int tap = 1; tap < TAPS; tap++) {
                    sum = _mm512_fmadd_ps(_mm512_set1_ps(matrix[position * TAPS + tap]), taps[tap], sum);
                }
                _mm512_mask_storeu_ps(target + position * planeStride, mask, sum);
            }
        }
    }
}

TARGET void kernels_winograd_kernel_untransform_avx512(const float *transformed, long planeStride, long count,
                                                       const float *matrix, float *gradient) {
    const __m512i indices = kernelIndices();
    for (long first = 0; first < count; first += LANES) {
        const __mmask16 mask = count - first >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - first)) - 1);
        __m512 positions[POSITIONS];
        for (int position = 0; position < POSITIONS; position++) {
            positions[position] = _mm512_maskz_loadu_ps(mask, transformed + position * planeStride + first);
        }
        float *kernels = gradient + first * TAPS;
        for (int tap = 0; tap < TAPS; tap++) {
            __m512 sum = _mm512_mul_ps(_mm512_set1_ps(matrix[tap]), positions[0]);
            for (int position = 1; position < POSITIONS; position++) {
                sum = _mm512_fmadd_ps(_mm512_set1_ps(matrix[position * TAPS + tap]), positions[position], sum);
            }
            _mm512_mask_i32scatter_ps(kernels + tap, mask, indices, sum, 4);
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx512f() first.
void kernels_winograd_kernel_transform_avx512(const float *weight, long count, const float *matrix,
                                              float *transformed, long planeStride) {
    (void)weight; (void)count; (void)matrix; (void)transformed; (void)planeStride;
}
void kernels_winograd_kernel_untransform_avx512(const float *transformed, long planeStride, long count,
                                                const float *matrix, float *gradient) {
    (void)transformed; (void)planeStride; (void)count; (void)matrix; (void)gradient;
}
void kernels_winograd_kernel_transform_swapped_avx512(const float *weight, long rows, long columns,
                                                      long columnBegin, long columnEnd, const float *matrix,
                                                      float *transformed, long planeStride) {
    (void)weight; (void)rows; (void)columns; (void)columnBegin; (void)columnEnd; (void)matrix; (void)transformed;
    (void)planeStride;
}

#endif
