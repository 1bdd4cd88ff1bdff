#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

// The weight gradient vectorized over filters instead of output positions (what oneDNN's
// backward-weights kernels do on blocked layouts): the output gradient is first transposed to
// [position][filter] (filters padded to 16 lanes), then for a block of taps, every output
// position adds `input(tap, position) × dy(position, filters)` — one broadcast input times a
// vector of filters — into accumulators that stay in registers across all positions. No
// horizontal sums and no cache-line-splitting input loads, unlike the position-vectorized
// kernel, whose 16-lane input loads start at every float offset.

#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define LANES 16
/// Output-gradient floats (a band of rows × padded filters, at least one row) swept per block of
/// taps: 32 KiB stays in L1 while every tap block reads it, each block's sums going through
/// memory once per band. With 512 KiB bands, read from L2 by each block of 6 taps, the 7×7
/// stem's sweep (one 28 KiB row per band now) ran slower: call-by-call pairs' median ratio
/// 0.943 for this, 1.00 on 5×5 32 → 32 and 7×7 16 → 16 over 64×64.
#define BAND_FLOATS (1L << 13)

/// Accumulates `VC` filter vectors × `TB` taps over output rows [rowBegin, rowEnd):
/// `sums[i·width + v·16 + lane] += Σ padded[offsets[i] + oh·strideH·rowStride + ow] · dyT[(oh·OW + ow)·width + v·16 + lane]`
/// for i < tapsHere (offsets past tapsHere repeat the last one; their sums are dropped).
#define BLOCK_FUNCTION(VC, TB)                                                                           \
    TARGET static void block_##VC(const float *padded, long rowStride, long strideH, const long *offsets, \
                                  long tapsHere, const float *dyT, long width, long rowBegin, long rowEnd, \
                                  long outputWidth, float *sums) {                                         \
        __m512 acc[TB][VC];                                                                              \
        for (int i = 0; i < TB; i++)                                                                     \
            for (int v = 0; v < VC; v++) acc[i][v] = _mm512_setzero_ps();                                \
        for (long oh = rowBegin; oh < rowEnd; oh++) {                                                    \
            const float *row = padded + oh * strideH * rowStride;                                        \
            const float *x[TB];                                                                          \
            for (int i = 0; i < TB; i++) x[i] = row + offsets[i];                                        \
            const float *d = dyT + oh * outputWidth * width;                                             \
            for (long ow = 0; ow < outputWidth; ow++) {                                                  \
                __m512 dy[VC];                                                                           \
                for (int v = 0; v < VC; v++) dy[v] = _mm512_loadu_ps(d + ow * width + v * LANES);        \
                for (int i = 0; i < TB; i++) {                                                           \
                    const __m512 input = _mm512_set1_ps(x[i][ow]);                                       \
                    for (int v = 0; v < VC; v++) acc[i][v] = _mm512_fmadd_ps(input, dy[v], acc[i][v]);   \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
        for (int i = 0; i < TB; i++) {                                                                   \
            if (i >= tapsHere) break;                                                                    \
            for (int v = 0; v < VC; v++) {                                                               \
                float *s = sums + i * width + v * LANES;                                                 \
                _mm512_storeu_ps(s, _mm512_add_ps(_mm512_loadu_ps(s), acc[i][v]));                       \
            }                                                                                            \
        }                                                                                                \
    }

// Taps per block: 8 for 1–2 filter vectors (16 accumulators; 12 taps kept 12 input pointers live
// beside the loop's own and ran slower: 5×5 32 → 32, 12.5 against 9.0 ms), 6 for 3–4 (24).
BLOCK_FUNCTION(1, 8)
BLOCK_FUNCTION(2, 8)
BLOCK_FUNCTION(3, 6)
BLOCK_FUNCTION(4, 6)

long kernels_direct_weight_gradient_by_filters_scratch_count(long filters, long positions, long tapCount) {
    const long width = (filters + LANES - 1) / LANES * LANES;
    return (positions + tapCount) * width;
}

TARGET void kernels_direct_weight_gradient_by_filters_avx512(const float *padded, long rowStride, long strideH,
                                                             const long *taps, long tapCount,
                                                             const float *outputGradient, long filters,
                                                             long outputHeight, long outputWidth,
                                                             float *scratch, float *weightGradient) {
    const long positions = outputHeight * outputWidth;
    const long vectors = (filters + LANES - 1) / LANES, width = vectors * LANES;
    float *dyT = scratch;
    float *sums = scratch + positions * width;
    // dyT[p][f] = dy[f][p], zero past the last filter (a scalar gather, 16 × 16 at a time, was
    // a twentieth of the stem's pass: pairs' median 0.95 with the vector transpose).
    kernels_transpose_avx512(outputGradient, filters, positions, positions, dyT, width);
    if (width > filters) {
        for (long p = 0; p < positions; p++) memset(dyT + p * width + filters, 0, (size_t)(width - filters) * sizeof(float));
    }
    memset(sums, 0, (size_t)(tapCount * width) * sizeof(float));
    long band = BAND_FLOATS / (outputWidth * width);
    if (band < 1) band = 1;
    for (long top = 0; top < outputHeight; top += band) {
        const long bottom = top + band < outputHeight ? top + band : outputHeight;
        for (long v0 = 0; v0 < vectors; v0 += 4) {
            const long vc = vectors - v0 < 4 ? vectors - v0 : 4;
            const long tb = vc <= 2 ? 8 : 6;
            for (long t = 0; t < tapCount; t += tb) {
                const long here = tapCount - t < tb ? tapCount - t : tb;
                long offsets[12];
                for (long i = 0; i < tb; i++) offsets[i] = taps[t + (i < here ? i : here - 1)];
                const float *d = dyT + v0 * LANES;
                float *s = sums + t * width + v0 * LANES;
                switch (vc) {
                case 1: block_1(padded, rowStride, strideH, offsets, here, d, width, top, bottom, outputWidth, s); break;
                case 2: block_2(padded, rowStride, strideH, offsets, here, d, width, top, bottom, outputWidth, s); break;
                case 3: block_3(padded, rowStride, strideH, offsets, here, d, width, top, bottom, outputWidth, s); break;
                default: block_4(padded, rowStride, strideH, offsets, here, d, width, top, bottom, outputWidth, s); break;
                }
            }
        }
    }
    for (long f = 0; f < filters; f++) {
        for (long t = 0; t < tapCount; t++) weightGradient[f * tapCount + t] += sums[t * width + f];
    }
}

#else

long kernels_direct_weight_gradient_by_filters_scratch_count(long filters, long positions, long tapCount) {
    (void)filters; (void)positions; (void)tapCount;
    return 0;
}

// Never called: the Swift side checks kernels_simd_has_avx512f() first.
void kernels_direct_weight_gradient_by_filters_avx512(const float *padded, long rowStride, long strideH,
                                                      const long *taps, long tapCount,
                                                      const float *outputGradient, long filters,
                                                      long outputHeight, long outputWidth,
                                                      float *scratch, float *weightGradient) {
    (void)padded; (void)rowStride; (void)strideH; (void)taps; (void)tapCount; (void)outputGradient;
    (void)filters; (void)outputHeight; (void)outputWidth; (void)scratch; (void)weightGradient;
}

#endif
