#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// Winograd F(2×2, 3×3)'s tile transforms, 16 tiles of one tile-row per step: the input
// transform Bᵀ d B, the output transform Aᵀ M A and the output gradient's A dY Aᵀ. The Swift
// versions (WinogradF2x3.swift) run four tiles per step on zero-padded copies of the rows; here
// masked loads stand in for the padding (a masked-off lane reads nothing and is zero), and one
// vpermt2ps pair splits 32 consecutive floats into even and odd columns. Each result is the same
// sum of the same terms in the same order as the Swift code's, so the bits agree.

#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define LANES 16

/// Lanes j of a 16-float load at column `start` that fall inside `[0, width)`.
TARGET static inline __mmask16 columnMask(long start, long width) {
    const long first = start < 0 ? -start : 0;
    const long end = width - start > LANES ? LANES : width - start;
    if (end <= first) return 0;
    return (__mmask16)(((1u << (end - first)) - 1) << first);
}

/// The first `count` lanes (all 16 from 16 on).
TARGET static inline __mmask16 leadingLanes(long count) {
    return count >= LANES ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

/// 16 floats of `row` from column `start`, zero where the column is outside `[0, width)`.
TARGET static inline __m512 loadColumns(const float *row, long start, long width) {
    return _mm512_maskz_loadu_ps(columnMask(start, width), row + start);
}

/// `-v` as Swift's prefix minus forms it: the sign flipped (0 − v would turn −0 into +0).
TARGET static inline __m512 negate(__m512 v) {
    return _mm512_castsi512_ps(_mm512_xor_epi32(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)));
}

TARGET static inline __m512i evenIndices(void) {
    return _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
}

TARGET static inline __m512i oddIndices(void) {
    return _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
}

/// Columns start + 2t (`even`) and start + 2t + 1 (`odd`) of `row` for t = 0…15, zero outside
/// `[0, width)`: 32 floats loaded and split by one vpermt2ps each.
TARGET static inline void evenOddColumns(const float *row, long start, long width, __m512 *even, __m512 *odd) {
    const __m512 low = loadColumns(row, start, width), high = loadColumns(row, start + LANES, width);
    *even = _mm512_permutex2var_ps(low, evenIndices(), high);
    *odd = _mm512_permutex2var_ps(low, oddIndices(), high);
}

/// `d·B` of 16 tiles of one input row (`row` is NULL above or below the image): tile t covers
/// columns start + 2t … start + 2t + 3.
TARGET static inline void rowTransform(const float *row, long start, long width, __m512 out[4]) {
    if (!row) {
        out[0] = out[1] = out[2] = out[3] = _mm512_setzero_ps();
        return;
    }
    __m512 d0, d1, d2, d3;
    evenOddColumns(row, start, width, &d0, &d1);
    evenOddColumns(row, start + 2, width, &d2, &d3);
    out[0] = _mm512_sub_ps(d0, d2);
    out[1] = _mm512_add_ps(d1, d2);
    out[2] = _mm512_sub_ps(d2, d1);
    out[3] = _mm512_sub_ps(d1, d3);
}

/// Row `y` of a `height × width` plane, or NULL above or below it (the padding).
static inline const float *planeRow(const float *plane, long height, long width, long y) {
    return y >= 0 && y < height ? plane + y * width : 0;
}

/// By columns of 16 tiles, down the tile-rows: consecutive tile-rows share two input rows, so
/// each row is loaded and transformed once and the bottom two of one tile-row are the top two
/// of the next, kept in registers. Tile-row by tile-row, every row was loaded and transformed
/// twice, and the pass waited on those loads: call-by-call pairs' median ratios, this order ÷
/// that one, resnet-c2 forward 0.904, backward-data 0.895, weight gradient 0.941; cifar-64
/// forward 0.904, weight gradient 0.934; 8×256×14×14 → 256 0.927 / 0.939; 8×512×7×7 → 512
/// 0.947 / 0.941.
TARGET void kernels_winograd_input_transform_avx512(const float *plane, long height, long width,
                                                    long paddingTop, long paddingLeft,
                                                    long firstTileRow, long tileRows, long tilesWide,
                                                    float *transformed, long planeStride) {
    for (long tile = 0; tile < tilesWide; tile += LANES) {
        const __mmask16 store = leadingLanes(tilesWide - tile);
        const long start = 2 * tile - paddingLeft;
        const long top = 2 * firstTileRow - paddingTop;
        __m512 a[4], b[4], c[4], d[4];
        rowTransform(planeRow(plane, height, width, top), start, width, a);
        rowTransform(planeRow(plane, height, width, top + 1), start, width, b);
        float *base = transformed + tile;
        for (long tileRow = 0; tileRow < tileRows; tileRow++) {
            const long y = top + 2 * tileRow + 2;
            rowTransform(planeRow(plane, height, width, y), start, width, c);
            rowTransform(planeRow(plane, height, width, y + 1), start, width, d);
            for (int i = 0; i < 4; i++) {
                _mm512_mask_storeu_ps(base + i * planeStride, store, _mm512_sub_ps(a[i], c[i]));
                _mm512_mask_storeu_ps(base + (4 + i) * planeStride, store, _mm512_add_ps(b[i], c[i]));
                _mm512_mask_storeu_ps(base + (8 + i) * planeStride, store, _mm512_sub_ps(c[i], b[i]));
                _mm512_mask_storeu_ps(base + (12 + i) * planeStride, store, _mm512_sub_ps(b[i], d[i]));
                a[i] = c[i];
                b[i] = d[i];
            }
            base += tilesWide;
        }
    }
}

TARGET void kernels_winograd_output_transform_avx512(const float *products, long planeStride,
                                                     long firstTileRow, long tileRows, long tilesWide,
                                                     float *plane, long outputHeight, long outputWidth, float bias) {
    const __m512 offset = _mm512_set1_ps(bias);
    // Lane j of the first (second) half of a 32-float output row: column 2·(j/2) + j%2 of the
    // tiles' even and odd sums, interleaved back into pixel order.
    const __m512i lowerHalf = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i upperHalf = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    for (long tileRow = 0; tileRow < tileRows; tileRow++) {
        const long outputRow = 2 * (firstTileRow + tileRow);
        const float *source = products + tileRow * tilesWide;
        for (long tile = 0; tile < tilesWide; tile += LANES) {
            const __mmask16 load = leadingLanes(tilesWide - tile);
            __m512 m[16];
            for (int position = 0; position < 16; position++) {
                m[position] = _mm512_maskz_loadu_ps(load, source + position * planeStride + tile);
            }
            const __m512 s00 = _mm512_add_ps(_mm512_add_ps(m[0], m[4]), m[8]);
            const __m512 s01 = _mm512_add_ps(_mm512_add_ps(m[1], m[5]), m[9]);
            const __m512 s02 = _mm512_add_ps(_mm512_add_ps(m[2], m[6]), m[10]);
            const __m512 s03 = _mm512_add_ps(_mm512_add_ps(m[3], m[7]), m[11]);
            const __m512 s10 = _mm512_sub_ps(_mm512_sub_ps(m[4], m[8]), m[12]);
            const __m512 s11 = _mm512_sub_ps(_mm512_sub_ps(m[5], m[9]), m[13]);
            const __m512 s12 = _mm512_sub_ps(_mm512_sub_ps(m[6], m[10]), m[14]);
            const __m512 s13 = _mm512_sub_ps(_mm512_sub_ps(m[7], m[11]), m[15]);
            const __m512 evenTop = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s00, s01), s02), offset);
            const __m512 oddTop = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s01, s02), s03), offset);
            const __m512 evenBottom = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s10, s11), s12), offset);
            const __m512 oddBottom = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s11, s12), s13), offset);
            const long column = 2 * tile;
            const __mmask16 first = leadingLanes(outputWidth - column), second = leadingLanes(outputWidth - column - LANES);
            for (int half = 0; half < 2; half++) {
                const long row = outputRow + half;
                if (row >= outputHeight) break;
                const __m512 even = half ? evenBottom : evenTop, odd = half ? oddBottom : oddTop;
                float *target = plane + row * outputWidth + column;
                _mm512_mask_storeu_ps(target, first, _mm512_permutex2var_ps(even, lowerHalf, odd));
                _mm512_mask_storeu_ps(target + LANES, second, _mm512_permutex2var_ps(even, upperHalf, odd));
            }
        }
    }
}

TARGET void kernels_winograd_output_gradient_transform_avx512(const float *plane, long outputHeight, long outputWidth,
                                                              long firstTileRow, long tileRows, long tilesWide,
                                                              float *transformed, long planeStride) {
    for (long tileRow = 0; tileRow < tileRows; tileRow++) {
        const long outputRow = 2 * (firstTileRow + tileRow);
        float *destination = transformed + tileRow * tilesWide;
        for (long tile = 0; tile < tilesWide; tile += LANES) {
            const __mmask16 store = leadingLanes(tilesWide - tile);
            const long column = 2 * tile;
            __m512 even[2], odd[2];
            for (int k = 0; k < 2; k++) {
                if (outputRow + k >= outputHeight) {
                    even[k] = odd[k] = _mm512_setzero_ps();
                    continue;
                }
                const float *row = plane + (outputRow + k) * outputWidth;
                evenOddColumns(row, column, outputWidth, &even[k], &odd[k]);
            }
            // A·dY (4×2), then (A·dY)·Aᵀ (4×4), as the Swift code forms them.
            const __m512 t[4][2] = {
                {even[0], odd[0]},
                {_mm512_add_ps(even[0], even[1]), _mm512_add_ps(odd[0], odd[1])},
                {_mm512_sub_ps(even[0], even[1]), _mm512_sub_ps(odd[0], odd[1])},
                {negate(even[1]), negate(odd[1])},
            };
            float *base = destination + tile;
            for (int r = 0; r < 4; r++) {
                const __m512 a = t[r][0], b = t[r][1];
                _mm512_mask_storeu_ps(base + 4 * r * planeStride, store, a);
                _mm512_mask_storeu_ps(base + (4 * r + 1) * planeStride, store, _mm512_add_ps(a, b));
                _mm512_mask_storeu_ps(base + (4 * r + 2) * planeStride, store, _mm512_sub_ps(a, b));
                _mm512_mask_storeu_ps(base + (4 * r + 3) * planeStride, store, negate(b));
            }
        }
    }
}

#else

// Never called: the Swift side checks for AVX-512 first.
void kernels_winograd_input_transform_avx512(const float *plane, long height, long width,
                                             long paddingTop, long paddingLeft,
                                             long firstTileRow, long tileRows, long tilesWide,
                                             float *transformed, long planeStride) {
    (void)plane; (void)height; (void)width; (void)paddingTop; (void)paddingLeft; (void)firstTileRow;
    (void)tileRows; (void)tilesWide; (void)transformed; (void)planeStride;
}
void kernels_winograd_output_transform_avx512(const float *products, long planeStride,
                                              long firstTileRow, long tileRows, long tilesWide,
                                              float *plane, long outputHeight, long outputWidth, float bias) {
    (void)products; (void)planeStride; (void)firstTileRow; (void)tileRows; (void)tilesWide; (void)plane;
    (void)outputHeight; (void)outputWidth; (void)bias;
}
void kernels_winograd_output_gradient_transform_avx512(const float *plane, long outputHeight, long outputWidth,
                                                       long firstTileRow, long tileRows, long tilesWide,
                                                       float *transformed, long planeStride) {
    (void)plane; (void)outputHeight; (void)outputWidth; (void)firstTileRow; (void)tileRows; (void)tilesWide;
    (void)transformed; (void)planeStride;
}

#endif
