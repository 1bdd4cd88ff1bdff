#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// A convolution with the filters as the vector dimension, over a channel-last image: each
// block keeps R output pixels × NV vectors of 16 filters in R·NV registers; per input channel
// of each tap it loads NV weight vectors and broadcasts R input values, one per pixel. Every
// loaded value is used R or NV times and no output column is computed to be thrown away,
// which the products over a spatial layout (ImplicitConvolution) did KW − 1 times per output
// row at stride 1.
//
// The loops run tap by tap and 64 channels at a time (a slice; two per pass) over every pixel
// of a band of rows (in blocks of 6 in raster order, a block running on into the next row), the
// accumulators going through `out` between passes: so the weights in use (64 channels × 64
// filters per slice, 16 KB) stay in L1 while every pixel uses them. With all taps and
// channels inside the register block instead, each block of 6 pixels streamed the whole weight
// block (600 KB for 96 → 256 channels 5×5) from L2: 8×96×27×27 → 256 5×5 forward 39.2 → 35.5 ms
// (minima of 3 alternating runs, two threads).

#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define PIXELS 6

/// Adds `segments` slices to R pixels × NV filter vectors held in `out` (pixel r's row
/// `outStride` floats after pixel r − 1's): slice k's channels [0, counts[k]), its inputs
/// `offsets[k]` floats after pixel r's `xs[r]`, its weights right after slice k − 1's. With
/// `next` (the next block's 6 pixels, else NULL) it asks for their inputs into L1 as it goes.
static inline __attribute__((always_inline)) TARGET void
accumulate(const int R, const int NV, const float *const *xs, const float *const *next, long segments,
           const long *offsets, const long *counts, const float *weight, float *out, long outStride) {
    __m512 acc[6][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) acc[r][j] = _mm512_loadu_ps(out + r * outStride + 16 * j);
    const long width = 16 * NV;
    const float *w = weight;
    for (long k = 0; k < segments; k++) {
        const float *x[6], *nx[PIXELS];
        for (int r = 0; r < R; r++) x[r] = xs[r] + offsets[k];
        if (next) for (int r = 0; r < PIXELS; r++) nx[r] = next[r] + offsets[k];
        const long count = counts[k];
        for (long c0 = 0; c0 < count; c0 += 16) {
            // One line of each of the next block's pixels per 16 channels of this block's.
            if (next) for (int r = 0; r < PIXELS; r++) _mm_prefetch((const char *)(nx[r] + c0), _MM_HINT_T0);
            const long end = count - c0 < 16 ? count : c0 + 16;
            for (long c = c0; c < end; c++, w += width) {
                __m512 wv[4];
                for (int j = 0; j < NV; j++) wv[j] = _mm512_loadu_ps(w + 16 * j);
                for (int r = 0; r < R; r++) {
                    const __m512 v = _mm512_set1_ps(x[r][c]);
                    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(v, wv[j], acc[r][j]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) _mm512_storeu_ps(out + r * outStride + 16 * j, acc[r][j]);
}

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

/// Adds `segments` slices (see `accumulate`) to every pixel of a band (`pixels` in raster
/// order, `outputWidth` per row), in blocks of 6 that run on across row ends: a row of 14 or 28 pixels
/// would otherwise end in a block of 2 or 4, with a third or a sixth of the registers idle.
/// Each block also asks for its share of the `aheadLines` cache lines at `ahead` (the next
/// pass's weights) into L2, so a weight past L2 (streaming from L3 each pass) is there before
/// the next pass's first block needs it. Into L2 rather than L1, where it would evict the
/// weights in use: call-by-call pairs' median ratios against no prefetch, forward, 2 threads:
/// 8×512×14×14 → 512 3×3 stride 2 (9.4 MB) 0.957, 8×256×28×28 → 512 stride 2 (4.7 MB) 0.950
/// (its backward-data by phases 0.971), 8×256×28×28 → 256 stride 2 0.980, 8×96×27×27 → 256 5×5
/// 0.979 (backward-data 0.985), 8×256×28×28 → 256 dilation 2 0.986, small weights 0.99–1.00
/// (resnet-c3s2 1.002); into L1, 1.01–1.02 against L2.
static inline __attribute__((always_inline)) TARGET void
bandSlice(const int NV, const float *x, long rowStep, long rowsPerImage, long imageStep, long pixelStep,
          long outputWidth, long pixels, long segments, const long *offsets, const long *counts,
          const float *weight, float *out, long outStride, const float *ahead, long aheadLines, int prefetchInputs) {
    long image = 0, row = 0, column = 0;
    const long blocks = (pixels + PIXELS - 1) / PIXELS;
    const long linesPerBlock = (aheadLines + blocks - 1) / blocks;
    long line = 0;
    for (long pixel = 0; pixel < pixels; pixel += PIXELS) {
        for (long end = line + linesPerBlock < aheadLines ? line + linesPerBlock : aheadLines; line < end; line++)
            _mm_prefetch((const char *)(ahead + 16 * line), _MM_HINT_T1);
        const float *xs[PIXELS];
        const long here = pixels - pixel < PIXELS ? pixels - pixel : PIXELS;
        pixelInputs(x, imageStep, rowStep, pixelStep, outputWidth, rowsPerImage, here, &image, &row, &column, xs);
        // The next block's pixels (the last block's own again, past the band's end).
        const float *next[PIXELS];
        if (prefetchInputs) {
            long nextImage = image, nextRow = row, nextColumn = column;
            const long rest = pixels - pixel - here, nextHere = rest < PIXELS ? rest : PIXELS;
            pixelInputs(x, imageStep, rowStep, pixelStep, outputWidth, rowsPerImage, nextHere,
                        &nextImage, &nextRow, &nextColumn, next);
            for (long r = nextHere; r < PIXELS; r++) next[r] = r ? next[r - 1] : xs[0];
        }
        const float *const *nextInputs = prefetchInputs ? next : 0;
        float *o = out + pixel * outStride;
        switch (here) {
        case 6: accumulate(6, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 5: accumulate(5, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 4: accumulate(4, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 3: accumulate(3, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        case 2: accumulate(2, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        default: accumulate(1, NV, xs, nextInputs, segments, offsets, counts, weight, o, outStride); break;
        }
    }
}

/// Channels per slice: 64 × 64 filters of weights, 16 KB, stay in L1.
#define CHANNEL_CHUNK 64
/// Slices (the next tap's, or the same tap's next channels) one pass of a block's accumulators
/// through `out` covers: two (32 KB of weights) halve those loads and stores. Call-by-call
/// pairs' median ratios against one: 8×64×28×28 → 64 7×7 forward 0.97, 8×96×27×27 → 256 5×5
/// 0.95, resnet-c3s2 0.99, 8×64×32×32 → 128 5×5 backward-data 0.97; three or four slices
/// measured no better (0.95–0.98).
#define SLICES_PER_PASS 2

TARGET void kernels_channel_last_rows_avx512(const float *image, long rowStep, long rows,
                                             long rowsPerImage, long imageStep, long channels,
                                             long pixelStep, const long *tapOffsets, long taps,
                                             const float *weight, long filtersPadded, const float *bias,
                                             long outputWidth, float *out, bool prefetchInputs) {
    const long pixels = rows * outputWidth;
    const float *weightEnd = weight + taps * channels * filtersPadded;
    for (long first = 0; first < filtersPadded; first += 64) {
        const long vectors = (filtersPadded - first) / 16 < 4 ? (filtersPadded - first) / 16 : 4;
        const long width = 16 * vectors;
        for (long p = 0; p < pixels; p++) {
            float *o = out + p * filtersPadded + first;
            for (long j = 0; j < width; j += 16)
                _mm512_storeu_ps(o + j, bias ? _mm512_loadu_ps(bias + first + j) : _mm512_setzero_ps());
        }
        const float *block = weight + first * taps * channels;
        const long slicesPerTap = (channels + CHANNEL_CHUNK - 1) / CHANNEL_CHUNK;
        const long slices = taps * slicesPerTap;
        for (long slice = 0; slice < slices; slice += SLICES_PER_PASS) {
            const long t = slice / slicesPerTap, c0 = slice % slicesPerTap * CHANNEL_CHUNK;
            long offsets[SLICES_PER_PASS], counts[SLICES_PER_PASS], segments = 0;
            for (long k = slice; k < slice + SLICES_PER_PASS && k < slices; k++, segments++) {
                const long tk = k / slicesPerTap, ck = k % slicesPerTap * CHANNEL_CHUNK;
                offsets[segments] = tapOffsets[tk] + ck - tapOffsets[t] - c0;
                counts[segments] = channels - ck < CHANNEL_CHUNK ? channels - ck : CHANNEL_CHUNK;
            }
            const float *w = block + (t * channels + c0) * width;
            const float *x = image + tapOffsets[t] + c0;
            float *o = out + first;
            // The next pass's weights follow this pass's in the packed layout (the next filter
            // block's first after the last pass of a block).
            long passFloats = 0;
            for (long k = 0; k < segments; k++) passFloats += counts[k] * width;
            const float *ahead = w + passFloats;
            const long aheadFloats = weightEnd - ahead < passFloats ? weightEnd - ahead : passFloats;
            const long aheadLines = aheadFloats / 16;
#define SLICE_ARGUMENTS x, rowStep, rowsPerImage, imageStep, pixelStep, outputWidth, pixels, segments, offsets, counts, w, o, filtersPadded, ahead, aheadLines, prefetchInputs
            switch (vectors) {
            case 4: bandSlice(4, SLICE_ARGUMENTS); break;
            case 3: bandSlice(3, SLICE_ARGUMENTS); break;
            case 2: bandSlice(2, SLICE_ARGUMENTS); break;
            default: bandSlice(1, SLICE_ARGUMENTS); break;
            }
#undef SLICE_ARGUMENTS
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx512f() first.
void kernels_channel_last_rows_avx512(const float *image, long rowStep, long rows,
                                      long rowsPerImage, long imageStep, long channels,
                                      long pixelStep, const long *tapOffsets, long taps,
                                      const float *weight, long filtersPadded, const float *bias,
                                      long outputWidth, float *out, bool prefetchInputs) {
    (void)image; (void)rowStep; (void)rows; (void)rowsPerImage; (void)imageStep; (void)channels; (void)pixelStep;
    (void)tapOffsets; (void)taps;
    (void)weight; (void)filtersPadded; (void)bias; (void)outputWidth; (void)out; (void)prefetchInputs;
}

#endif
