#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/// The mask that keeps the first `count` (1...8) lanes.
TARGET INLINE __m256i lanes(long count) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), index);
}

/// The accumulators of one block: filter `f`, vector `v` is `a<f><v>`. They are named variables,
/// not an array, and at most 12 with 2 input vectors and 1 weight beside them: with all 16 YMM
/// registers live (4 filters × 3 vectors) clang shuffled and spilled them inside the tap loop.
#define FOR_FILTERS(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define DECLARE(F) __m256 a##F##0 = _mm256_setzero_ps(), a##F##1 = _mm256_setzero_ps();

/// One tap: `vectors` input vectors loaded once, each multiplied by the 6 filters' weights.
#define MULTIPLY(F)                                                        \
    weight = _mm256_broadcast_ss(w + F);                                   \
    a##F##0 = _mm256_fmadd_ps(weight, x0, a##F##0);                        \
    if (vectors > 1) a##F##1 = _mm256_fmadd_ps(weight, x1, a##F##1);

/// Adds filter F's bias and stores its `vectors` vectors (only `lastCount` lanes of the last one).
#define STORE(F)                                                                            \
    if (F < filtersHere) {                                                                  \
        const __m256 b = _mm256_set1_ps(bias ? bias[F] : 0.0f);                             \
        storeRow(out[F], vectors, lastCount, _mm256_add_ps(a##F##0, b), _mm256_add_ps(a##F##1, b)); \
    }

/// Stores `vectors` (1 or 2) vectors of one filter's row; only `lastCount` lanes of the last.
TARGET INLINE void storeRow(float *out, int vectors, long lastCount, __m256 v0, __m256 v1) {
    __m256 last = vectors == 1 ? v0 : v1;
    if (vectors > 1) _mm256_storeu_ps(out, v0);
    float *lastOut = out + 8 * (vectors - 1);
    if (lastCount == 8) {
        _mm256_storeu_ps(lastOut, last);
    } else {
        _mm256_maskstore_ps(lastOut, lanes(lastCount), last);
    }
}

/// 6 filters × `V` × 8 output columns starting at `input`, over every tap. The bias is added
/// after the sum. `V` is a constant at each call site, so each compiles to its own loop.
#define BLOCK(V)                                                           \
    do {                                                                   \
        enum { vectors = V };                                              \
        FOR_FILTERS(DECLARE)                                               \
        for (long t = 0; t < tapCount; t++) {                              \
            const float *x = input + taps[t];                              \
            const float *w = weights + KERNELS_DIRECT_FILTER_BLOCK * t;    \
            const __m256 x0 = _mm256_loadu_ps(x);                          \
            const __m256 x1 = vectors > 1 ? _mm256_loadu_ps(x + 8) : x0;   \
            __m256 weight;                                                 \
            FOR_FILTERS(MULTIPLY)                                          \
        }                                                                  \
        FOR_FILTERS(STORE)                                                 \
    } while (0)

TARGET static void block2(const float *input, const long *taps, long tapCount, const float *weights,
                          const float *bias, float *const out[KERNELS_DIRECT_FILTER_BLOCK], long filtersHere,
                          long lastCount) {
    BLOCK(2);
}

TARGET static void block1(const float *input, const long *taps, long tapCount, const float *weights,
                          const float *bias, float *const out[KERNELS_DIRECT_FILTER_BLOCK], long filtersHere,
                          long lastCount) {
    BLOCK(1);
}

TARGET void kernels_direct_convolution_avx2(const float *padded, long rowStride, long strideH,
                                            const long *taps, long tapCount,
                                            const float *packedWeights, const float *bias, long filters,
                                            float *output, long outputHeight, long outputWidth,
                                            long rowBegin, long rowEnd) {
    const long planeSize = outputHeight * outputWidth;
    const long blocks = (filters + KERNELS_DIRECT_FILTER_BLOCK - 1) / KERNELS_DIRECT_FILTER_BLOCK;
    for (long oh = rowBegin; oh < rowEnd; oh++) {
        const float *row = padded + oh * strideH * rowStride;
        for (long b = 0; b < blocks; b++) {
            const long first = b * KERNELS_DIRECT_FILTER_BLOCK;
            const long filtersHere = filters - first < KERNELS_DIRECT_FILTER_BLOCK ? filters - first : KERNELS_DIRECT_FILTER_BLOCK;
            const float *weights = packedWeights + b * tapCount * KERNELS_DIRECT_FILTER_BLOCK;
            const float *blockBias = bias ? bias + first : 0;
            float *out[KERNELS_DIRECT_FILTER_BLOCK];
            for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) {
                out[f] = output + (first + (f < filtersHere ? f : 0)) * planeSize + oh * outputWidth;
            }
            float *at[KERNELS_DIRECT_FILTER_BLOCK];
            long ow = 0;
            for (; ow + 16 <= outputWidth; ow += 16) {
                for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) at[f] = out[f] + ow;
                block2(row + ow, taps, tapCount, weights, blockBias, at, filtersHere, 8);
            }
            const long rest = outputWidth - ow;
            if (rest == 0) continue;
            for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) at[f] = out[f] + ow;
            if (rest > 8) {
                block2(row + ow, taps, tapCount, weights, blockBias, at, filtersHere, rest - 8);
            } else {
                block1(row + ow, taps, tapCount, weights, blockBias, at, filtersHere, rest);
            }
        }
    }
}


/// Sum of the 8 lanes.
TARGET INLINE float laneSum(__m256 v) {
    __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

/// Output-gradient floats per filter swept before each flush to the weight gradient: a band of
/// whole rows this long keeps its 6 filters' rows (12 KiB) in L1 while every tap pair sweeps them.
#define WEIGHT_GRADIENT_BAND_FLOATS 512

#define WG_DECLARE(F) __m256 g##F##0 = _mm256_setzero_ps(), g##F##1 = _mm256_setzero_ps();
/// One vector of 8 output positions: filter F's gradient times the two taps' inputs.
#define WG_MULTIPLY(F)                                              \
    {                                                               \
        const __m256 dy = LOAD(dyRows[F] + ow);                     \
        g##F##0 = _mm256_fmadd_ps(dy, x0, g##F##0);                 \
        g##F##1 = _mm256_fmadd_ps(dy, x1, g##F##1);                 \
    }
#define WG_FLUSH(F)                                                                   \
    if (F < filtersHere) {                                                            \
        weightGradient[(first + F) * tapCount + t] += laneSum(g##F##0);               \
        if (pair) weightGradient[(first + F) * tapCount + t + 1] += laneSum(g##F##1); \
    }

TARGET void kernels_direct_weight_gradient_avx2(const float *padded, long rowStride, long strideH,
                                                const long *taps, long tapCount, long tapBegin, long tapEnd,
                                                const float *outputGradient, long filters,
                                                long outputHeight, long outputWidth, float *weightGradient) {
    const long planeSize = outputHeight * outputWidth;
    const long blocks = (filters + KERNELS_DIRECT_FILTER_BLOCK - 1) / KERNELS_DIRECT_FILTER_BLOCK;
    const long fullWidth = outputWidth / 8 * 8, tail = outputWidth - fullWidth;
    const long band = outputWidth >= WEIGHT_GRADIENT_BAND_FLOATS ? 1 : WEIGHT_GRADIENT_BAND_FLOATS / outputWidth;
    for (long top = 0; top < outputHeight; top += band) {
        const long bottom = top + band < outputHeight ? top + band : outputHeight;
        for (long b = 0; b < blocks; b++) {
            const long first = b * KERNELS_DIRECT_FILTER_BLOCK;
            const long filtersHere = filters - first < KERNELS_DIRECT_FILTER_BLOCK ? filters - first : KERNELS_DIRECT_FILTER_BLOCK;
            for (long t = tapBegin; t < tapEnd; t += 2) {
                // Two taps per sweep: each gradient vector loaded feeds 2 accumulators, each input
                // vector 6. An odd last tap is swept twice and flushed once.
                const int pair = t + 1 < tapEnd;
                const long offset0 = taps[t], offset1 = taps[pair ? t + 1 : t];
                FOR_FILTERS(WG_DECLARE)
                for (long oh = top; oh < bottom; oh++) {
                    const float *row = padded + oh * strideH * rowStride;
                    const float *dyRows[KERNELS_DIRECT_FILTER_BLOCK];
                    for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) {
                        // Missing filters read filter `first`'s row; their sums are never flushed.
                        dyRows[f] = outputGradient + (first + (f < filtersHere ? f : 0)) * planeSize + oh * outputWidth;
                    }
                    // Full vectors with plain loads: 12 accumulators, 2 inputs and 1 gradient
                    // vector fill 15 registers (a mask held across this loop made 16 and spills).
#define LOAD(p) _mm256_loadu_ps(p)
                    for (long ow = 0; ow < fullWidth; ow += 8) {
                        const __m256 x0 = LOAD(row + offset0 + ow), x1 = LOAD(row + offset1 + ow);
                        FOR_FILTERS(WG_MULTIPLY)
                    }
#undef LOAD
                    if (tail) {
                        // Masked lanes load zeros on both sides, so pixels past the row's last
                        // window (even infinities) never reach the sum.
                        const __m256i mask = lanes(tail);
#define LOAD(p) _mm256_maskload_ps(p, mask)
                        const long ow = fullWidth;
                        const __m256 x0 = LOAD(row + offset0 + ow), x1 = LOAD(row + offset1 + ow);
                        FOR_FILTERS(WG_MULTIPLY)
#undef LOAD
                    }
                }
                FOR_FILTERS(WG_FLUSH)
            }
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx2_fma() first.
void kernels_direct_convolution_avx2(const float *padded, long rowStride, long strideH,
                                     const long *taps, long tapCount,
                                     const float *packedWeights, const float *bias, long filters,
                                     float *output, long outputHeight, long outputWidth,
                                     long rowBegin, long rowEnd) {
    (void)padded; (void)rowStride; (void)strideH; (void)taps; (void)tapCount; (void)packedWeights;
    (void)bias; (void)filters; (void)output; (void)outputHeight; (void)outputWidth; (void)rowBegin; (void)rowEnd;
}

// Never called, as above.
void kernels_direct_weight_gradient_avx2(const float *padded, long rowStride, long strideH,
                                         const long *taps, long tapCount, long tapBegin, long tapEnd,
                                         const float *outputGradient, long filters,
                                         long outputHeight, long outputWidth, float *weightGradient) {
    (void)padded; (void)rowStride; (void)strideH; (void)taps; (void)tapCount; (void)tapBegin; (void)tapEnd;
    (void)outputGradient; (void)filters; (void)outputHeight; (void)outputWidth; (void)weightGradient;
}

#endif
