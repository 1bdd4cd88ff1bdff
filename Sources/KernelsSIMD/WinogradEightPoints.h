// The input matrix Bᵀ of the eight points 0, ±1, ±2, ±½, ∞, in the two forms the AVX2 Winograd
// transforms use (included inside their x86-64 sections after their TARGET / INLINE
// definitions; not part of the public header): as constants for combine(), a row of
// coefficients at a time (the large-kernel transforms, WinogradLargeTransforms.c), and as its
// product factored by its ± row pairs (the stride-2 transforms, WinogradStrideTwo.c; no faster
// in the large-kernel ones, measured).
#ifndef KERNELS_WINOGRAD_EIGHT_POINTS_H
#define KERNELS_WINOGRAD_EIGHT_POINTS_H

#include <immintrin.h>

/// Bᵀ for α = 8 (points 0, 1, −1, 2, −2, ½, −½, ∞).
static const float inputMatrix8[8][8] = {
    {-1, 0, 5.25f, 0, -5.25f, 0, 1, 0},
    {0, 1, 1, -4.25f, -4.25f, 1, 1, 0},
    {0, -1, 1, 4.25f, -4.25f, -1, 1, 0},
    {0, 0.5f, 0.25f, -2.5f, -1.25f, 2, 1, 0},
    {0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0},
    {0, 2, 4, -2.5f, -5, 0.5f, 1, 0},
    {0, -2, 4, 2.5f, -5, -0.5f, 1, 0},
    {0, -1, 0, 5.25f, 0, -5.25f, 0, 1},
};

/// Σ_j coefficients[j]·x[j] over the nonzero coefficients (constants once inlined), starting
/// from the first term rather than from zero.
INLINE __m256 combine(const float *coefficients, const __m256 *x, int count) {
    __m256 sum = _mm256_setzero_ps();
    int started = 0;
    #pragma unroll
    for (int j = 0; j < count; j++) {
        const float c = coefficients[j];
        if (c == 0) continue;
        if (!started) {
            sum = c == 1 ? x[j] : _mm256_mul_ps(_mm256_set1_ps(c), x[j]);
            started = 1;
        } else if (c == 1) {
            sum = _mm256_add_ps(sum, x[j]);
        } else if (c == -1) {
            sum = _mm256_sub_ps(sum, x[j]);
        } else {
            sum = _mm256_fmadd_ps(_mm256_set1_ps(c), x[j], sum);
        }
    }
    return sum;
}

/// `y = Bᵀ x` for the eight points (0, ±1, ±2, ±½, ∞): rows 1–6 are ± pairs sharing an even
/// and an odd part (30 operations where each row on its own takes 44).
INLINE void eightPointInput(const __m256 x[8], __m256 y[8]) {
    const __m256 c525 = _mm256_set1_ps(5.25f), c425 = _mm256_set1_ps(4.25f), c5 = _mm256_set1_ps(5);
    const __m256 c4 = _mm256_set1_ps(4), c25 = _mm256_set1_ps(2.5f), c2 = _mm256_set1_ps(2);
    const __m256 c125 = _mm256_set1_ps(1.25f), c05 = _mm256_set1_ps(0.5f), c025 = _mm256_set1_ps(0.25f);
    y[0] = _mm256_fmadd_ps(c525, _mm256_sub_ps(x[2], x[4]), _mm256_sub_ps(x[6], x[0]));
    y[7] = _mm256_fmadd_ps(c525, _mm256_sub_ps(x[3], x[5]), _mm256_sub_ps(x[7], x[1]));
    // (x2 − 4.25 x4 + x6) ± (x1 − 4.25 x3 + x5)
    __m256 even = _mm256_fnmadd_ps(c425, x[4], _mm256_add_ps(x[2], x[6]));
    __m256 odd = _mm256_fnmadd_ps(c425, x[3], _mm256_add_ps(x[1], x[5]));
    y[1] = _mm256_add_ps(even, odd);
    y[2] = _mm256_sub_ps(even, odd);
    // (0.25 x2 − 1.25 x4 + x6) ± (0.5 x1 − 2.5 x3 + 2 x5)
    even = _mm256_fmadd_ps(c025, x[2], _mm256_fnmadd_ps(c125, x[4], x[6]));
    odd = _mm256_fmadd_ps(c05, x[1], _mm256_fnmadd_ps(c25, x[3], _mm256_mul_ps(c2, x[5])));
    y[3] = _mm256_add_ps(even, odd);
    y[4] = _mm256_sub_ps(even, odd);
    // (4 x2 − 5 x4 + x6) ± (2 x1 − 2.5 x3 + 0.5 x5)
    even = _mm256_fmadd_ps(c4, x[2], _mm256_fnmadd_ps(c5, x[4], x[6]));
    odd = _mm256_fmadd_ps(c2, x[1], _mm256_fnmadd_ps(c25, x[3], _mm256_mul_ps(c05, x[5])));
    y[5] = _mm256_add_ps(even, odd);
    y[6] = _mm256_sub_ps(even, odd);
}

#endif
