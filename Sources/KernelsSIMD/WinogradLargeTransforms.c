#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// Winograd F(2×2, r×r)'s tile transforms for r = 5 and r = 7 (α = r + 1 = 6 or 8 points:
// 0, ±1, ±2 and, for 8, ±½, plus ∞), and F(4×4, 5×5)'s input and output transforms (α = 8, the
// same points and Bᵀ), eight tiles of one tile-row per step in YMM registers. The
// matrices are constants the compiler folds into adds, subtracts and FMAs, skipping zeros
// (a multiply by 0 cannot be dropped under IEEE rules unless the code says so).

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE TARGET static inline __attribute__((always_inline))
#define LANES 8

#include "WinogradEightPoints.h"

/// Bᵀ for α = 6 (points 0, 1, −1, 2, −2, ∞): row k is the coefficients of the Lagrange
/// numerator of point k (the last, of the whole node polynomial).
static const float inputMatrix6[6][6] = {
    {4, 0, -5, 0, 1, 0},
    {0, -4, -4, 1, 1, 0},
    {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0},
    {0, 2, -1, -2, 1, 0},
    {0, 4, 0, -5, 0, 1},
};

/// Aᵀ for α = 6: the powers 0 and 1 of each point.
static const float outputMatrix6[2][6] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 1},
};

/// Aᵀ for α = 8.
static const float outputMatrix8[2][8] = {
    {1, 1, 1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0.5f, -0.5f, 1},
};

/// Aᵀ for α = 8 with 4 × 4 output tiles (F(4×4, 5×5)): the powers 0 to 3 of each point.
static const float outputMatrix8By4[4][8] = {
    {1, 1, 1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
    {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
    {0, 1, -1, 8, -8, 0.125f, -0.125f, 1},
};

/// One input row of the plane (`y` may be in the padding: zeros) split into its `m` column
/// phases, `length` apart from `phases`: phase q's u-th is padded column m·u + q −
/// paddingLeft, for u < length. With m = 2 (output tiles 2 wide), a tile's d_j (j = 2q' + q)
/// over eight tiles is then one unaligned load; likewise for m = 4. Eight u a step where every
/// column is inside the row (m = 2), one at a time elsewhere.
INLINE void splitRow(const int m, const float *plane, long height, long width, long y, long paddingLeft,
                     float *phases, long length) {
    if (y < 0 || y >= height) {
        for (long u = 0; u < m * length; u++) phases[u] = 0;
        return;
    }
    const float *row = plane + y * width;
    long u = 0;
    if (m == 2) {
        float *even = phases, *odd = phases + length;
        // Vector steps cover u in [first, last): 2u − paddingLeft ≥ 0 and 2(u + 7) + 1 − paddingLeft < width.
        const long first = (paddingLeft + 1) / 2;
        long last = (width + paddingLeft) / 2 - LANES + 1;
        if (last > length - LANES + 1) last = length - LANES + 1;
        for (; u < first && u < length; u++) {
            const long x = 2 * u - paddingLeft;
            even[u] = x >= 0 && x < width ? row[x] : 0;
            odd[u] = x + 1 >= 0 && x + 1 < width ? row[x + 1] : 0;
        }
        for (; u < last; u += LANES) {
            const float *source = row + 2 * u - paddingLeft;
            const __m256 a = _mm256_loadu_ps(source), b = _mm256_loadu_ps(source + LANES);
            const __m256 low = _mm256_permute2f128_ps(a, b, 0x20), high = _mm256_permute2f128_ps(a, b, 0x31);
            _mm256_storeu_ps(even + u, _mm256_shuffle_ps(low, high, 0x88));
            _mm256_storeu_ps(odd + u, _mm256_shuffle_ps(low, high, 0xDD));
        }
    }
    for (; u < length; u++) {
        for (int q = 0; q < m; q++) {
            const long x = m * u + q - paddingLeft;
            phases[q * length + u] = x >= 0 && x < width ? row[x] : 0;
        }
    }
}

/// Tile-rows transformed per pass over a band of split rows: bounds the scratch whatever the
/// plane's height (see kernels_winograd_large_input_scratch_count).
#define BAND_TILE_ROWS 16

/// The row transform d·B of eight tiles of split row `i` (its m phases `length` apart).
INLINE void rowTransform(const int alpha, const int m, const float *matrix, const float *phases, long length, __m256 out[8]) {
    __m256 d[8];
#pragma unroll
    for (int j = 0; j < alpha; j++) d[j] = _mm256_loadu_ps(phases + (j % m) * length + j / m);
#pragma unroll
    for (int l = 0; l < alpha; l++) out[l] = combine(matrix + l * alpha, d, alpha);
}

/// V = Bᵀ d B for every tile of the span, tiles m × m outputs (m rows and columns apart). By
/// bands of tile-rows: each input row of a band is split into its m column phases once, then
/// by columns of eight tiles down the band, where consecutive tile-rows share α − m input
/// rows: each row's d·B is computed once and shifted up, m new rows a tile-row, then Bᵀ down
/// the columns.
INLINE void inputTransform(const int alpha, const int m, const float *matrix, const float *plane, long height, long width,
                           long paddingTop, long paddingLeft, long firstTileRow, long tileRows, long tilesWide,
                           float *transformed, long planeStride, float *scratch) {
    const long length = tilesWide + alpha / m;
    const long rowFloats = m * length;
    for (long bandStart = 0; bandStart < tileRows; bandStart += BAND_TILE_ROWS) {
        const long bandRows = tileRows - bandStart < BAND_TILE_ROWS ? tileRows - bandStart : BAND_TILE_ROWS;
        const long top = m * (firstTileRow + bandStart) - paddingTop;
        const long inputRows = m * bandRows + alpha - m;
        for (long r = 0; r < inputRows; r++) splitRow(m, plane, height, width, top + r, paddingLeft, scratch + r * rowFloats, length);
        for (long tx = 0; tx < tilesWide; tx += LANES) {
            __m256 rows[8][8];
#pragma unroll
            for (int i = 0; i < alpha - m; i++) rowTransform(alpha, m, matrix, scratch + i * rowFloats + tx, length, rows[i]);
            for (long tileRow = 0; tileRow < bandRows; tileRow++) {
                const long newest = m * tileRow + alpha - m;
#pragma unroll
                for (int i = 0; i < m; i++) {
                    rowTransform(alpha, m, matrix, scratch + (newest + i) * rowFloats + tx, length, rows[alpha - m + i]);
                }
                float *destination = transformed + (bandStart + tileRow) * tilesWide + tx;
#pragma unroll
                for (int l = 0; l < alpha; l++) {
                    __m256 column[8];
#pragma unroll
                    for (int i = 0; i < alpha; i++) column[i] = rows[i][l];
#pragma unroll
                    for (int k = 0; k < alpha; k++) {
                        _mm256_storeu_ps(destination + (k * alpha + l) * planeStride, combine(matrix + k * alpha, column, alpha));
                    }
                }
#pragma unroll
                for (int i = 0; i < alpha - m; i++) {
#pragma unroll
                    for (int l = 0; l < alpha; l++) rows[i][l] = rows[i + m][l];
                }
            }
        }
    }
}

/// Eight tiles' m outputs of one output row (vector b holding column b of each tile) in
/// column order: tile t's column b at 2t + b (m = 2) or 4t + b (m = 4).
INLINE void interleave(const int m, const __m256 *columns, float *row) {
    if (m == 2) {
        // Per 128-bit half: l0 r0 l1 r1 | l2 r2 l3 r3, then the halves in column order.
        const __m256 low = _mm256_unpacklo_ps(columns[0], columns[1]), high = _mm256_unpackhi_ps(columns[0], columns[1]);
        _mm256_storeu_ps(row, _mm256_permute2f128_ps(low, high, 0x20));
        _mm256_storeu_ps(row + LANES, _mm256_permute2f128_ps(low, high, 0x31));
        return;
    }
    // A 4 × 8 transpose: after the unpacks and shuffles, each 128-bit half holds one tile's 4 columns
    // (tiles 0|4, 1|5, 2|6, 3|7).
    const __m256 t0 = _mm256_unpacklo_ps(columns[0], columns[1]), t1 = _mm256_unpackhi_ps(columns[0], columns[1]);
    const __m256 t2 = _mm256_unpacklo_ps(columns[2], columns[3]), t3 = _mm256_unpackhi_ps(columns[2], columns[3]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    _mm256_storeu_ps(row, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(row + LANES, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(row + 2 * LANES, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(row + 3 * LANES, _mm256_permute2f128_ps(u2, u3, 0x31));
}

/// Y = Aᵀ M A (+ bias) for every tile of the span, eight tiles a step, each tile's m × m
/// outputs interleaved back into m rows of `scratch` (m·tilesWide floats each) and the rows
/// inside the plane copied out.
INLINE void outputTransform(const int alpha, const int m, const float *matrix, const float *products, long planeStride,
                            long firstTileRow, long tileRows, long tilesWide, float *plane, long outputHeight,
                            long outputWidth, float bias, float *scratch) {
    const __m256 offset = _mm256_set1_ps(bias);
    const long rowLength = m * tilesWide;
    for (long tileRow = 0; tileRow < tileRows; tileRow++) {
        const float *source = products + tileRow * tilesWide;
        for (long tx = 0; tx < tilesWide; tx += LANES) {
            // Aᵀ down each column l, then across: y[a][b] = Σ_l Aᵀ[b][l]·s[a][l].
            __m256 sums[4][8];
            #pragma unroll
            for (int l = 0; l < alpha; l++) {
                __m256 column[8];
                #pragma unroll
                for (int k = 0; k < alpha; k++) column[k] = _mm256_loadu_ps(source + (k * alpha + l) * planeStride + tx);
                #pragma unroll
                for (int a = 0; a < m; a++) sums[a][l] = combine(matrix + a * alpha, column, alpha);
            }
            #pragma unroll
            for (int a = 0; a < m; a++) {
                __m256 columns[4];
                #pragma unroll
                for (int b = 0; b < m; b++) columns[b] = _mm256_add_ps(combine(matrix + b * alpha, sums[a], alpha), offset);
                interleave(m, columns, scratch + a * rowLength + m * tx);
            }
        }
        #pragma unroll
        for (int a = 0; a < m; a++) {
            const long y = m * (firstTileRow + tileRow) + a;
            if (y >= outputHeight) break;
            const float *row = scratch + a * rowLength;
            float *destination = plane + y * outputWidth;
            for (long x = 0; x < outputWidth; x++) destination[x] = row[x];
        }
    }
}

/// dM = A dY Aᵀ (A = the output matrix's transpose) for every tile of the span, eight tiles a
/// step: each tile's 2 × 2 output gradient (zero past the plane's edge) spread over its α × α
/// positions, laid out as the input transform lays out V.
INLINE void outputGradientTransform(const int alpha, const float *matrix, const float *plane, long outputHeight,
                                    long outputWidth, long firstTileRow, long tileRows, long tilesWide,
                                    float *transformed, long planeStride, float *scratch) {
    for (long tileRow = 0; tileRow < tileRows; tileRow++) {
        const long top = 2 * (firstTileRow + tileRow);
#pragma unroll
        for (int a = 0; a < 2; a++) {
            splitRow(2, plane, outputHeight, outputWidth, top + a, 0, scratch + 2 * a * tilesWide, tilesWide);
        }
        float *destination = transformed + tileRow * tilesWide;
        for (long tx = 0; tx < tilesWide; tx += LANES) {
            // s[a][l] = Σ_b dY[a][b]·Aᵀ[b][l], then dM[k][l] = Σ_a Aᵀ[a][k]·s[a][l].
            __m256 sums[2][8];
#pragma unroll
            for (int a = 0; a < 2; a++) {
                const __m256 gradient[2] = {_mm256_loadu_ps(scratch + 2 * a * tilesWide + tx),
                                            _mm256_loadu_ps(scratch + (2 * a + 1) * tilesWide + tx)};
#pragma unroll
                for (int l = 0; l < alpha; l++) {
                    const float coefficients[2] = {matrix[l], matrix[alpha + l]};
                    sums[a][l] = combine(coefficients, gradient, 2);
                }
            }
#pragma unroll
            for (int k = 0; k < alpha; k++) {
                const float coefficients[2] = {matrix[k], matrix[alpha + k]};
#pragma unroll
                for (int l = 0; l < alpha; l++) {
                    const __m256 pair[2] = {sums[0][l], sums[1][l]};
                    _mm256_storeu_ps(destination + (k * alpha + l) * planeStride + tx, combine(coefficients, pair, 2));
                }
            }
        }
    }
}

TARGET void kernels_winograd_large_output_gradient_transform_avx2(long kernelSize, const float *plane, long outputHeight,
                                                                  long outputWidth, long firstTileRow, long tileRows,
                                                                  long tilesWide, float *transformed, long planeStride,
                                                                  float *scratch) {
    if (kernelSize == 5) {
        outputGradientTransform(6, &outputMatrix6[0][0], plane, outputHeight, outputWidth, firstTileRow, tileRows,
                                tilesWide, transformed, planeStride, scratch);
    } else {
        outputGradientTransform(8, &outputMatrix8[0][0], plane, outputHeight, outputWidth, firstTileRow, tileRows,
                                tilesWide, transformed, planeStride, scratch);
    }
}

long kernels_winograd_large_input_scratch_count(long kernelSize, long outputTile, long tilesWide) {
    const long alpha = kernelSize + outputTile - 1;
    return (outputTile * BAND_TILE_ROWS + alpha - outputTile) * outputTile * (tilesWide + alpha / outputTile);
}

TARGET void kernels_winograd_large_input_transform_avx2(long kernelSize, long outputTile, const float *plane, long height,
                                                        long width, long paddingTop, long paddingLeft,
                                                        long firstTileRow, long tileRows, long tilesWide,
                                                        float *transformed, long planeStride, float *scratch) {
    if (outputTile == 4) {
        inputTransform(8, 4, &inputMatrix8[0][0], plane, height, width, paddingTop, paddingLeft, firstTileRow, tileRows,
                       tilesWide, transformed, planeStride, scratch);
    } else if (kernelSize == 5) {
        inputTransform(6, 2, &inputMatrix6[0][0], plane, height, width, paddingTop, paddingLeft, firstTileRow, tileRows,
                       tilesWide, transformed, planeStride, scratch);
    } else {
        inputTransform(8, 2, &inputMatrix8[0][0], plane, height, width, paddingTop, paddingLeft, firstTileRow, tileRows,
                       tilesWide, transformed, planeStride, scratch);
    }
}

TARGET void kernels_winograd_large_output_transform_avx2(long kernelSize, long outputTile, const float *products,
                                                         long planeStride, long firstTileRow, long tileRows, long tilesWide,
                                                         float *plane, long outputHeight, long outputWidth,
                                                         float bias, float *scratch) {
    if (outputTile == 4) {
        outputTransform(8, 4, &outputMatrix8By4[0][0], products, planeStride, firstTileRow, tileRows, tilesWide, plane,
                        outputHeight, outputWidth, bias, scratch);
    } else if (kernelSize == 5) {
        outputTransform(6, 2, &outputMatrix6[0][0], products, planeStride, firstTileRow, tileRows, tilesWide, plane,
                        outputHeight, outputWidth, bias, scratch);
    } else {
        outputTransform(8, 2, &outputMatrix8[0][0], products, planeStride, firstTileRow, tileRows, tilesWide, plane,
                        outputHeight, outputWidth, bias, scratch);
    }
}

#else

long kernels_winograd_large_input_scratch_count(long kernelSize, long outputTile, long tilesWide) {
    (void)kernelSize; (void)outputTile; (void)tilesWide;
    return 0;
}

// Never called: the Swift side checks kernels_simd_has_avx2_fma() first.
void kernels_winograd_large_output_gradient_transform_avx2(long kernelSize, const float *plane, long outputHeight,
                                                           long outputWidth, long firstTileRow, long tileRows,
                                                           long tilesWide, float *transformed, long planeStride,
                                                           float *scratch) {
    (void)kernelSize; (void)plane; (void)outputHeight; (void)outputWidth; (void)firstTileRow; (void)tileRows;
    (void)tilesWide; (void)transformed; (void)planeStride; (void)scratch;
}
void kernels_winograd_large_input_transform_avx2(long kernelSize, long outputTile, const float *plane, long height,
                                                 long width, long paddingTop, long paddingLeft,
                                                 long firstTileRow, long tileRows, long tilesWide,
                                                 float *transformed, long planeStride, float *scratch) {
    (void)kernelSize; (void)outputTile; (void)plane; (void)height; (void)width; (void)paddingTop; (void)paddingLeft;
    (void)firstTileRow; (void)tileRows; (void)tilesWide; (void)transformed; (void)planeStride; (void)scratch;
}
void kernels_winograd_large_output_transform_avx2(long kernelSize, long outputTile, const float *products,
                                                  long planeStride, long firstTileRow, long tileRows, long tilesWide,
                                                  float *plane, long outputHeight, long outputWidth,
                                                  float bias, float *scratch) {
    (void)kernelSize; (void)outputTile; (void)products; (void)planeStride; (void)firstTileRow; (void)tileRows; (void)tilesWide;
    (void)plane; (void)outputHeight; (void)outputWidth; (void)bias; (void)scratch;
}

#endif
