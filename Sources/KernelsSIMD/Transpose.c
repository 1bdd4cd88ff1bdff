#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// A matrix transpose by 16 × 16 tiles held in registers: the strided layer's weight gradient
// needs each image's output gradient with the filters contiguous (`[position][filter]`), and a
// scalar transpose of its ~100 000 floats per image, reading across 128 planes, cost about as
// much as a tenth of the products it feeds.

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

/// Loads the 16 × 16 tile at (`row`, `column`) of `source` and transposes it in `v`: its first
/// `rowsHere` rows, the columns in `columnMask`; everything else is zero and nothing past the
/// matrix is read.
TARGET static inline void loadTransposed(const float *source, long sourceStride, long row, long column, long rowsHere,
                                         __mmask16 columnMask, __m512 v[16]) {
    for (int i = 0; i < 16; i++) {
        v[i] = i < rowsHere ? _mm512_maskz_loadu_ps(columnMask, source + (row + i) * sourceStride + column)
                            : _mm512_setzero_ps();
    }
    transpose16(v);
}

/// Transposes the tile at (`row`, `column`) of `source` into `destination`.
TARGET static inline void transposeTile(const float *source, long rows, long columns, long sourceStride,
                                        float *destination, long destinationStride, long row, long column) {
    const long rowsHere = rows - row < 16 ? rows - row : 16;
    const __mmask16 rowMask = (__mmask16)((1u << rowsHere) - 1u);
    const long columnsHere = columns - column < 16 ? columns - column : 16;
    const __mmask16 columnMask = (__mmask16)((1u << columnsHere) - 1u);
    // Rows and columns past the matrix are neither read nor written.
    __m512 v[16];
    loadTransposed(source, sourceStride, row, column, rowsHere, columnMask, v);
    for (int j = 0; j < 16; j++) {
        if (j < columnsHere) _mm512_mask_storeu_ps(destination + (column + j) * destinationStride + row, rowMask, v[j]);
    }
}

/// Tiles run down each band of 16 source columns before the next band, so the destination's
/// rows are written 16 at a time from start to end rather than 16 floats into every one of them
/// in turn: the channel-last convolution's output (`[pixel][filter]` into 128 planes for
/// resnet-c3s2) went faster, call-by-call pairs' median 0.974 of the row-by-row order, and
/// the other transposes measured the same either way (0.99–1.01).
TARGET void kernels_transpose_avx512(const float *source, long rows, long columns, long sourceStride,
                                     float *destination, long destinationStride) {
    for (long column = 0; column < columns; column += 16) {
        for (long row = 0; row < rows; row += 16) {
            transposeTile(source, rows, columns, sourceStride, destination, destinationStride, row, column);
        }
    }
}

/// The channel-last kernel's weight layout from the `[filter][channel][tap]` weight: one
/// transpose whose destination rows are permuted (source column `c·taps + t` to row
/// `t·channels + c`), 16 filters at a time across the columns. Per channel, a `rows × taps`
/// transpose (64 × 9) loaded 9 floats from each of 64 rows 9 KB apart (which share four L1
/// sets) and wrote 9 rows 64 KB apart: one thread's pack of the 4.7 MB weight of 8×256×14×14 →
/// 512 3×3 stride 2 took 11% of its forward pass in `perf`, this one 8%.
TARGET void kernels_pack_taps_avx512(const float *source, long rows, long sourceStride, long channels, long taps,
                                     long columnBegin, long columnEnd, float *destination, long width) {
    for (long row = 0; row < rows; row += 16) {
        const long rowsHere = rows - row < 16 ? rows - row : 16;
        const __mmask16 rowMask = (__mmask16)((1u << rowsHere) - 1u);
        long c = columnBegin / taps, t = columnBegin % taps;
        for (long column = columnBegin; column < columnEnd; column += 16) {
            const long columnsHere = columnEnd - column < 16 ? columnEnd - column : 16;
            const __mmask16 columnMask = (__mmask16)((1u << columnsHere) - 1u);
            __m512 v[16];
            loadTransposed(source, sourceStride, row, column, rowsHere, columnMask, v);
            for (long j = 0; j < columnsHere; j++) {
                _mm512_mask_storeu_ps(destination + (t * channels + c) * width + row, rowMask, v[j]);
                if (++t == taps) { t = 0; c++; }
            }
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx512f() first.
void kernels_transpose_avx512(const float *source, long rows, long columns, long sourceStride,
                              float *destination, long destinationStride) {
    (void)source; (void)rows; (void)columns; (void)sourceStride; (void)destination; (void)destinationStride;
}

// Never called, as above.
void kernels_pack_taps_avx512(const float *source, long rows, long sourceStride, long channels, long taps,
                              long columnBegin, long columnEnd, float *destination, long width) {
    (void)source; (void)rows; (void)sourceStride; (void)channels; (void)taps; (void)columnBegin; (void)columnEnd;
    (void)destination; (void)width;
}

#endif
