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
// The loops run tap by tap and 64 channels at a time over every pixel of a band of rows (in
// blocks of 6 in raster order, a block running on into the next row), the
// accumulators going through `out` (L1) between slices: so the slice of weights in use (64
// channels × 64 filters, 16 KB) stays in L1 while every pixel uses it. With all taps and
// channels inside the register block instead, each block of 6 pixels streamed the whole weight
// block (600 KB for 96 → 256 channels 5×5) from L2: 8×96×27×27 → 256 5×5 forward 39.2 → 35.5 ms
// (minima of 3 alternating runs, two threads).

#define TARGET __attribute__((target("avx512f,avx2,fma")))

/// Adds one tap's channels [0, count) to R pixels × NV filter vectors held in `out` (pixel r's
/// row `outStride` floats after pixel r − 1's), pixel r's inputs starting at `xs[r]`.
static inline __attribute__((always_inline)) TARGET void
accumulate(const int R, const int NV, const float *const *xs, long count,
           const float *weight, float *out, long outStride) {
    __m512 acc[6][4];
    const float *x[6];
    for (int r = 0; r < R; r++) x[r] = xs[r];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) acc[r][j] = _mm512_loadu_ps(out + r * outStride + 16 * j);
    const long width = 16 * NV;
    const float *w = weight;
    for (long c = 0; c < count; c++, w += width) {
        __m512 wv[4];
        for (int j = 0; j < NV; j++) wv[j] = _mm512_loadu_ps(w + 16 * j);
        for (int r = 0; r < R; r++) {
            const __m512 v = _mm512_set1_ps(x[r][c]);
            for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(v, wv[j], acc[r][j]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) _mm512_storeu_ps(out + r * outStride + 16 * j, acc[r][j]);
}

#define PIXELS 6

/// Adds one tap's channels [0, count) to every pixel of a band (`pixels` in raster order,
/// `outputWidth` per row), in blocks of 6 that run on across row ends: a row of 14 or 28 pixels
/// would otherwise end in a block of 2 or 4, with a third or a sixth of the registers idle.
static inline __attribute__((always_inline)) TARGET void
bandSlice(const int NV, const float *x, long rowStep, long pixelStep, long outputWidth, long pixels,
          long count, const float *weight, float *out, long outStride) {
    long row = 0, column = 0;
    for (long pixel = 0; pixel < pixels; pixel += PIXELS) {
        const float *xs[PIXELS];
        const long here = pixels - pixel < PIXELS ? pixels - pixel : PIXELS;
        for (long r = 0; r < here; r++) {
            xs[r] = x + row * rowStep + column * pixelStep;
            if (++column == outputWidth) { column = 0; row++; }
        }
        float *o = out + pixel * outStride;
        switch (here) {
        case 6: accumulate(6, NV, xs, count, weight, o, outStride); break;
        case 5: accumulate(5, NV, xs, count, weight, o, outStride); break;
        case 4: accumulate(4, NV, xs, count, weight, o, outStride); break;
        case 3: accumulate(3, NV, xs, count, weight, o, outStride); break;
        case 2: accumulate(2, NV, xs, count, weight, o, outStride); break;
        default: accumulate(1, NV, xs, count, weight, o, outStride); break;
        }
    }
}

#define CHANNEL_CHUNK 64

TARGET void kernels_channel_last_rows_avx512(const float *image, long rowStep, long rows,
                                             long channels, long pixelStep, const long *tapOffsets, long taps,
                                             const float *weight, long filtersPadded, const float *bias,
                                             long outputWidth, float *out) {
    const long pixels = rows * outputWidth;
    for (long first = 0; first < filtersPadded; first += 64) {
        const long vectors = (filtersPadded - first) / 16 < 4 ? (filtersPadded - first) / 16 : 4;
        const long width = 16 * vectors;
        for (long p = 0; p < pixels; p++) {
            float *o = out + p * filtersPadded + first;
            for (long j = 0; j < width; j += 16)
                _mm512_storeu_ps(o + j, bias ? _mm512_loadu_ps(bias + first + j) : _mm512_setzero_ps());
        }
        const float *block = weight + first * taps * channels;
        for (long t = 0; t < taps; t++) {
            for (long c0 = 0; c0 < channels; c0 += CHANNEL_CHUNK) {
                const long count = channels - c0 < CHANNEL_CHUNK ? channels - c0 : CHANNEL_CHUNK;
                const float *w = block + (t * channels + c0) * width;
                const float *x = image + tapOffsets[t] + c0;
                float *o = out + first;
                switch (vectors) {
                case 4: bandSlice(4, x, rowStep, pixelStep, outputWidth, pixels, count, w, o, filtersPadded); break;
                case 3: bandSlice(3, x, rowStep, pixelStep, outputWidth, pixels, count, w, o, filtersPadded); break;
                case 2: bandSlice(2, x, rowStep, pixelStep, outputWidth, pixels, count, w, o, filtersPadded); break;
                default: bandSlice(1, x, rowStep, pixelStep, outputWidth, pixels, count, w, o, filtersPadded); break;
                }
            }
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx512f() first.
void kernels_channel_last_rows_avx512(const float *image, long rowStep, long rows,
                                      long channels, long pixelStep, const long *tapOffsets, long taps,
                                      const float *weight, long filtersPadded, const float *bias,
                                      long outputWidth, float *out) {
    (void)image; (void)rowStep; (void)rows; (void)channels; (void)pixelStep; (void)tapOffsets; (void)taps;
    (void)weight; (void)filtersPadded; (void)bias; (void)outputWidth; (void)out;
}

#endif
