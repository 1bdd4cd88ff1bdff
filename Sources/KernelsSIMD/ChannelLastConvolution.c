#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// A convolution with the filters as the vector dimension, over a channel-last image: each
// block keeps R output pixels × NV vectors of filters in R·NV registers (6 × 4 vectors of 16 on
// AVX-512, 3 × 4 vectors of 8 on AVX2, as a GEMM micro-kernel of that width); per input channel
// of each tap it loads NV weight vectors and broadcasts R input values, one per pixel. Every
// loaded value is used R or NV times and no output column is computed to be thrown away,
// which the products over a spatial layout (ImplicitConvolution) did KW − 1 times per output
// row at stride 1.
//
// The loops run tap by tap and 64 channels at a time (a slice; two or three per pass) over every
// pixel of a band of rows (in blocks of 6 or 3 in raster order, a block running on into the next
// row), the accumulators going through `out` between passes: so the weights in use (64 channels ×
// 64 filters per slice, 16 KB; 8 KB with AVX2's 32) stay in L1 while every pixel uses them. With all taps and
// channels inside the register block instead, each block of 6 pixels streamed the whole weight
// block (600 KB for 96 → 256 channels 5×5) from L2: 8×96×27×27 → 256 5×5 forward 39.2 → 35.5 ms
// (minima of 3 alternating runs, two threads).

#define PIXELS 6

/// Where the inputs of `count` consecutive pixels start, from raster position (`*image`, `*row`,
/// `*column`), which then moves past them.
static inline __attribute__((always_inline)) void
pixelInputs(const float *x, long imageStep, long rowStep, long pixelStep, long outputWidth, long rowsPerImage,
            long count, long *image, long *row, long *column, const float **xs) {
    for (long r = 0; r < count; r++) {
        xs[r] = x + *image * imageStep + *row * rowStep + *column * pixelStep;
        if (++*column == outputWidth) {
            *column = 0;
            if (++*row == rowsPerImage) { *row = 0; ++*image; }
        }
    }
}

/// Channels per slice: 64 × 64 filters of weights, 16 KB, stay in L1.
#define CHANNEL_CHUNK 64
// SLICES_PER_PASS, set per instruction set below: the slices (the next tap's, or the same tap's
// next channels) one pass of a block's accumulators through `out` covers, so fewer passes load
// and store them.


// ---- AVX2 + FMA: 8 lanes, 16 YMM registers; blocks of 32 filters.

#define TARGET __attribute__((target("avx2,fma")))
#define NAME(x) x##_avx2
#define VEC __m256
#define LANES 8
#define MAX_VECTORS 4
#define BLOCK 32
#define REGISTERS 16
/// 3 pixels × 4 vectors (the layout oneDNN's AVX2 convolution uses: 3 broadcasts and 4 weight loads
/// per 12 multiply-adds) where a block has 32 filters, else 6 × 2 (a last block of 16). On a 2-core
/// AMD EPYC (Zen 3), call-by-call pairs' median ratios of 3 × 4 (three slices a pass) to 6 × 2
/// (four slices of 16 filters a pass), forward in two runs / backward-data: 8×96×27×27 → 256 5×5
/// 0.97, 0.92 / 0.93; 8×64×32×32 → 128 5×5 0.97, 0.98 / 0.94; 8×64×28×28 → 64 7×7 0.99, 0.93 /
/// 0.98; 8×32×56×56 → 96 5×5 0.95 / 0.96; 8×48×28×28 → 96 5×5 0.97 / 0.99; 8×32×28×28 → 32 7×7
/// 0.98 / 0.98. The loop alone (operands in L1) runs near 75 GFLOP/s per core either way, ~82% of a
/// plain FMA loop's 92: it issues 7 or 8 loads per 12 FMAs. (The template derives the pixels
/// per block from REGISTERS.)
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
/// Three slices of 64 channels × 32 filters: 24 KB of weights. From each against 6 × 2 in
/// separate runs, forward, three ÷ two: 8×96×27×27 → 256 5×5 0.97, 8×64×32×32 → 128 5×5 0.99,
/// 8×64×28×28 → 64 7×7 1.00; four (all of L1) ÷ three 1.00–1.05. With 16-filter blocks four
/// slices had beaten two (0.96–0.995), and unrolling the channel loop twice measured the same.
#define SLICES_PER_PASS 3
#include "ChannelLastConvolutionTemplate.h"
#undef SLICES_PER_PASS
#undef TARGET
#undef NAME
#undef VEC
#undef LANES
#undef MAX_VECTORS
#undef BLOCK
#undef REGISTERS
#undef V_ZERO
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_FMA

// ---- AVX-512 (F): 16 lanes, 32 ZMM registers; blocks of 64 filters.

#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define NAME(x) x##_avx512
#define VEC __m512
#define LANES 16
#define MAX_VECTORS 4
#define BLOCK 64
#define REGISTERS 32
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
/// Two slices of 64 channels × 64 filters (32 KB of weights) halve the loads and stores of one.
/// Call-by-call pairs' median ratios against one, on an AVX-512 Xeon: 8×64×28×28 → 64 7×7
/// forward 0.97, 8×96×27×27 → 256 5×5 0.95, resnet-c3s2 0.99, 8×64×32×32 → 128 5×5
/// backward-data 0.97; three or four slices measured no better (0.95–0.98).
#define SLICES_PER_PASS 2
#include "ChannelLastConvolutionTemplate.h"
#undef SLICES_PER_PASS

#else

// Never called: the Swift side checks kernels_simd_has_avx2_fma() (and _avx512f()) first.
#define CHANNEL_LAST_STUB(SUFFIX)                                                                           \
    void kernels_channel_last_rows_##SUFFIX(const float *image, long rowStep, long rows, long rowsPerImage, \
                                            long imageStep, long channels, long pixelStep,                  \
                                            const long *tapOffsets, long taps, const float *weight,         \
                                            long filtersPadded, const float *bias, long outputWidth,        \
                                            float *out, bool prefetchInputs) {                              \
        (void)image; (void)rowStep; (void)rows; (void)rowsPerImage; (void)imageStep; (void)channels;        \
        (void)pixelStep; (void)tapOffsets; (void)taps; (void)weight; (void)filtersPadded; (void)bias;       \
        (void)outputWidth; (void)out; (void)prefetchInputs;                                                 \
    }
CHANNEL_LAST_STUB(avx2)
CHANNEL_LAST_STUB(avx512)

#endif
