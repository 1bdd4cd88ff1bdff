#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// Winograd F(7×7, 2×2) for a 3×3 stride-2 layer seen as a 2×2 stride-1 layer over its four
// phase sub-images (see StrideTwoWinograd.swift): the kernel, input and output transforms,
// eight tiles a step in YMM registers. Tiles are numbered image after image, tile-row after
// tile-row, and a step's eight may straddle tile-rows and images, so layers whose tile-rows
// are short (4, 2 or 1 tiles of 7 outputs) fill every lane; the input tiles are read straight
// from the image, each row of 16 pixels split into its even and odd columns, with no
// phase-split copy (AVX2 gathers took twice as long: the input transform was as costly as a
// third of the GEMMs).

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE TARGET static inline __attribute__((always_inline))
#define LANES 8
#define ALPHA 8
#define TILE 7

#include "AVX2Lanes.h"
#include "WinogradEightPoints.h"

/// `y = Aᵀ x` with 7 × 7 output tiles (Aᵀ[a][j] = p_j^a, and 1 at ∞ in the last row): the ±
/// point pairs' sums feed the even powers, their differences the odd ones.
INLINE void outputRows(const __m256 x[ALPHA], __m256 y[TILE]) {
    const __m256 s1 = _mm256_add_ps(x[1], x[2]), d1 = _mm256_sub_ps(x[1], x[2]);
    const __m256 s2 = _mm256_add_ps(x[3], x[4]), d2 = _mm256_sub_ps(x[3], x[4]);
    const __m256 s3 = _mm256_add_ps(x[5], x[6]), d3 = _mm256_sub_ps(x[5], x[6]);
    y[0] = _mm256_add_ps(_mm256_add_ps(x[0], s1), _mm256_add_ps(s2, s3));
    y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2), d2, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), d3, d1));
    y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4), s2, _mm256_fmadd_ps(_mm256_set1_ps(0.25f), s3, s1));
    y[3] = _mm256_fmadd_ps(_mm256_set1_ps(8), d2, _mm256_fmadd_ps(_mm256_set1_ps(0.125f), d3, d1));
    y[4] = _mm256_fmadd_ps(_mm256_set1_ps(16), s2, _mm256_fmadd_ps(_mm256_set1_ps(0.0625f), s3, s1));
    y[5] = _mm256_fmadd_ps(_mm256_set1_ps(32), d2, _mm256_fmadd_ps(_mm256_set1_ps(0.03125f), d3, d1));
    y[6] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(64), s2, _mm256_fmadd_ps(_mm256_set1_ps(0.015625f), s3, s1)), x[7]);
}

/// Channel pairs whose tap vectors the kernel transform builds before writing them out.
#define PAIR_BLOCK 32

TARGET void kernels_winograd_stride2_kernel_transform_avx2(const float *weight, long channels, long firstFilter,
                                                           long filterCount, const float *matrix, float *transformed,
                                                           long planeStride) {
    const long depth = 4 * channels;
    for (long filter = firstFilter; filter < firstFilter + filterCount; filter++) {
        for (long blockStart = 0; blockStart < channels; blockStart += 2 * PAIR_BLOCK) {
            const long blockChannels = channels - blockStart < 2 * PAIR_BLOCK ? channels - blockStart : 2 * PAIR_BLOCK;
            const long pairs = (blockChannels + 1) / 2;
            // Lane 4·i + phase of pair p holds channel 2p + i's phase (ρ, σ) = (phase / 2,
            // phase % 2), whose 2 × 2 kernel tap (dt, du) is the 3×3 tap (2·dt + ρ, 2·du + σ),
            // zero past the edge.
            float taps[PAIR_BLOCK][4][LANES];
            for (long pair = 0; pair < pairs; pair++) {
                for (int lane = 0; lane < LANES; lane++) {
                    const long channel = blockStart + 2 * pair + lane / 4;
                    const int rho = (lane & 3) >> 1, sigma = lane & 1;
                    for (int tap = 0; tap < 4; tap++) {
                        const int row = 2 * (tap >> 1) + rho, column = 2 * (tap & 1) + sigma;
                        taps[pair][tap][lane] = channel < blockStart + blockChannels && row < 3 && column < 3
                            ? weight[(filter * channels + channel) * 9 + 3 * row + column] : 0;
                    }
                }
            }
            // Position after position, so each plane is written in one run.
            float *destination = transformed + filter * depth + 4 * blockStart;
            const long fullPairs = blockChannels / 2;
            for (int position = 0; position < ALPHA * ALPHA; position++) {
                const float *row = matrix + 4 * position;
                const __m256 t0 = _mm256_broadcast_ss(row), t1 = _mm256_broadcast_ss(row + 1);
                const __m256 t2 = _mm256_broadcast_ss(row + 2), t3 = _mm256_broadcast_ss(row + 3);
                float *plane = destination + position * planeStride;
                for (long pair = 0; pair < pairs; pair++) {
                    __m256 sum = _mm256_mul_ps(t0, _mm256_loadu_ps(taps[pair][0]));
                    sum = _mm256_fmadd_ps(t1, _mm256_loadu_ps(taps[pair][1]), sum);
                    sum = _mm256_fmadd_ps(t2, _mm256_loadu_ps(taps[pair][2]), sum);
                    sum = _mm256_fmadd_ps(t3, _mm256_loadu_ps(taps[pair][3]), sum);
                    if (pair < fullPairs) {
                        _mm256_storeu_ps(plane + 8 * pair, sum);
                    } else {
                        // An odd channel count's last channel: its four phases only.
                        _mm_storeu_ps(plane + 8 * pair, _mm256_castps256_ps128(sum));
                    }
                }
            }
        }
    }
}

/// Pixels (y0 + r, x0 + s) of a plane, r, s < 16, into `region` (16 a row), zero outside it:
/// row by row, the columns inside the plane one run (per-pixel tests became masked loads, and
/// these copies took 40% of the transform).
INLINE void copyRegion(const float *plane, long height, long width, long y0, long x0, float *region) {
    const long first = x0 < 0 ? -x0 : 0, last = width - x0 < 2 * ALPHA ? width - x0 : 2 * ALPHA;
    for (int r = 0; r < 2 * ALPHA; r++) {
        float *row = region + 2 * ALPHA * r;
        const long y = y0 + r;
        _mm256_storeu_ps(row, _mm256_setzero_ps());
        _mm256_storeu_ps(row + LANES, _mm256_setzero_ps());
        if (y < 0 || y >= height) continue;
        for (long s = first; s < last; s++) row[s] = plane[y * width + x0 + s];
    }
}

TARGET void kernels_winograd_stride2_input_transform_avx2(const float *plane, long imageStride, long height, long width,
                                                          long paddingTop, long paddingLeft, long tilesHigh,
                                                          long tilesWide, long tileCount, float *transformed,
                                                          long rowStride, long planeStride) {
    const long tilesPerImage = tilesHigh * tilesWide;
    // Tiles at the plane's edge (and lanes past the last tile) read a zero-padded copy.
    float regions[LANES][4 * ALPHA * ALPHA];
    for (long first = 0; first < tileCount; first += LANES) {
        // Each lane's 16 × 16 pixels: the four phases of its tile, by rows r = 2a + ρ.
        const float *source[LANES];
        long sourceStride[LANES];
        for (int lane = 0; lane < LANES; lane++) {
            const long tile = first + lane, index = tile % tilesPerImage;
            const long y0 = 2 * TILE * (index / tilesWide) - paddingTop, x0 = 2 * TILE * (index % tilesWide) - paddingLeft;
            const float *image = plane + tile / tilesPerImage * imageStride;
            if (tile < tileCount && y0 >= 0 && y0 + 2 * ALPHA <= height && x0 >= 0 && x0 + 2 * ALPHA <= width) {
                source[lane] = image + y0 * width + x0;
                sourceStride[lane] = width;
            } else {
                if (tile < tileCount) {
                    copyRegion(image, height, width, y0, x0, regions[lane]);
                } else {
                    for (int i = 0; i < 4 * ALPHA * ALPHA; i++) regions[lane][i] = 0;
                }
                source[lane] = regions[lane];
                sourceStride[lane] = 2 * ALPHA;
            }
        }
        // d·B of every phase's row a: each lane's 16 pixels of row r = 2a + ρ transposed so a
        // vector holds one pixel of the eight tiles; the even ones are phase (ρ, 0)'s, the odd
        // ones phase (ρ, 1)'s.
        __m256 rows[4][ALPHA][ALPHA];
        for (int r = 0; r < 2 * ALPHA; r++) {
            __m256 low[LANES], high[LANES];
            for (int lane = 0; lane < LANES; lane++) {
                const float *pixels = source[lane] + r * sourceStride[lane];
                low[lane] = _mm256_loadu_ps(pixels);
                high[lane] = _mm256_loadu_ps(pixels + LANES);
            }
            transpose8(low);
            transpose8(high);
            const __m256 even[ALPHA] = {low[0], low[2], low[4], low[6], high[0], high[2], high[4], high[6]};
            const __m256 odd[ALPHA] = {low[1], low[3], low[5], low[7], high[1], high[3], high[5], high[7]};
            const int rho = r & 1, a = r >> 1;
            eightPointInput(even, rows[2 * rho][a]);
            eightPointInput(odd, rows[2 * rho + 1][a]);
        }
        // Bᵀ down the columns.
        for (int phase = 0; phase < 4; phase++) {
            float *destination = transformed + phase * rowStride + first;
            for (int l = 0; l < ALPHA; l++) {
                __m256 column[ALPHA], out[ALPHA];
                for (int a = 0; a < ALPHA; a++) column[a] = rows[phase][a][l];
                eightPointInput(column, out);
                for (int k = 0; k < ALPHA; k++) _mm256_storeu_ps(destination + (k * ALPHA + l) * planeStride, out[k]);
            }
        }
    }
}

TARGET void kernels_winograd_stride2_output_transform_avx2(const float *products, long planeStride, long tileCount,
                                                           long tilesHigh, long tilesWide, float *plane,
                                                           long imageStride, long outputHeight, long outputWidth,
                                                           float bias) {
    const long tilesPerImage = tilesHigh * tilesWide;
    const __m256 offset = _mm256_set1_ps(bias);
    for (long first = 0; first < tileCount; first += LANES) {
        // Aᵀ down each column l, then across: y[a][b] = Σ_l Aᵀ[b][l]·s[a][l].
        __m256 sums[TILE][ALPHA];
        for (int l = 0; l < ALPHA; l++) {
            __m256 column[ALPHA], out[TILE];
            for (int k = 0; k < ALPHA; k++) column[k] = _mm256_loadu_ps(products + (k * ALPHA + l) * planeStride + first);
            outputRows(column, out);
            for (int a = 0; a < TILE; a++) sums[a][l] = out[a];
        }
        const long count = tileCount - first < LANES ? tileCount - first : LANES;
        float *origin[LANES];
        long rows[LANES], columns[LANES];
        int lastInRow[LANES];
        for (long lane = 0; lane < count; lane++) {
            const long tile = first + lane, index = tile % tilesPerImage;
            const long top = TILE * (index / tilesWide), left = TILE * (index % tilesWide);
            rows[lane] = outputHeight - top < TILE ? outputHeight - top : TILE;
            columns[lane] = outputWidth - left < TILE ? outputWidth - left : TILE;
            lastInRow[lane] = index % tilesWide == tilesWide - 1;
            origin[lane] = plane + tile / tilesPerImage * imageStride + top * outputWidth + left;
        }
        for (int a = 0; a < TILE; a++) {
            // Row a of the eight tiles, transposed so a vector holds one tile's 7 outputs.
            __m256 y[LANES];
            outputRows(sums[a], y);
            for (int b = 0; b < TILE; b++) y[b] = _mm256_add_ps(y[b], offset);
            y[TILE] = _mm256_setzero_ps();
            transpose8(y);
            for (long lane = 0; lane < count; lane++) {
                if (a >= rows[lane]) continue;
                float *destination = origin[lane] + a * outputWidth;
                if (!lastInRow[lane]) {
                    // The eighth float lands on the next tile's first column, which that tile
                    // (a later lane or step) writes afterwards.
                    _mm256_storeu_ps(destination, y[lane]);
                } else {
                    float row[LANES];
                    _mm256_storeu_ps(row, y[lane]);
                    for (long b = 0; b < columns[lane]; b++) destination[b] = row[b];
                }
            }
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx2_fma() first.
void kernels_winograd_stride2_kernel_transform_avx2(const float *weight, long channels, long firstFilter,
                                                    long filterCount, const float *matrix, float *transformed,
                                                    long planeStride) {
    (void)weight; (void)channels; (void)firstFilter; (void)filterCount; (void)matrix; (void)transformed;
    (void)planeStride;
}
void kernels_winograd_stride2_input_transform_avx2(const float *plane, long imageStride, long height, long width,
                                                   long paddingTop, long paddingLeft, long tilesHigh,
                                                   long tilesWide, long tileCount, float *transformed,
                                                   long rowStride, long planeStride) {
    (void)plane; (void)imageStride; (void)height; (void)width; (void)paddingTop; (void)paddingLeft;
    (void)tilesHigh; (void)tilesWide; (void)tileCount; (void)transformed; (void)rowStride; (void)planeStride;
}
void kernels_winograd_stride2_output_transform_avx2(const float *products, long planeStride, long tileCount,
                                                    long tilesHigh, long tilesWide, float *plane,
                                                    long imageStride, long outputHeight, long outputWidth,
                                                    float bias) {
    (void)products; (void)planeStride; (void)tileCount; (void)tilesHigh; (void)tilesWide; (void)plane;
    (void)imageStride; (void)outputHeight; (void)outputWidth; (void)bias;
}

#endif
