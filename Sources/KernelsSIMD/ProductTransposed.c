#include "KernelsSIMD.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

// C = A·Bᵀ with both operands row-major along the shared dimension: Winograd's weight-gradient
// products, dU_ξ[o][i] = Σ_t dM_ξ[o][t] · V_ξ[i][t], whose inner dimension (the tiles, 2000+)
// is long and contiguous in both. Each block holds 6 rows of A × 4 rows of B as 24 vectors of
// 16 partial sums over t, loads 10 vectors per 24 multiply-adds, and reduces each vector to its
// sum once per pass. OpenBLAS spent about a quarter of these products packing both operands.

#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define LANES 16
#define ROWS 6
#define COLUMNS 4
/// Floats of each row one pass sums before reducing: the 6 rows of A (24 KiB) stay in L1 while
/// every block of B streams past them, and the 24 reductions cost a few percent of the pass.
#define DEPTH 1024

#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DECLARE(R) __m512 s##R##0 = _mm512_setzero_ps(), s##R##1 = _mm512_setzero_ps(), \
                          s##R##2 = _mm512_setzero_ps(), s##R##3 = _mm512_setzero_ps();
#define MULTIPLY(R)                                             \
    {                                                           \
        const __m512 x = LOAD(rowsA[R] + t);                    \
        s##R##0 = _mm512_fmadd_ps(x, y0, s##R##0);              \
        s##R##1 = _mm512_fmadd_ps(x, y1, s##R##1);              \
        s##R##2 = _mm512_fmadd_ps(x, y2, s##R##2);              \
        s##R##3 = _mm512_fmadd_ps(x, y3, s##R##3);              \
    }
#define STEP                                                                       \
    const __m512 y0 = LOAD(rowsB[0] + t), y1 = LOAD(rowsB[1] + t);                 \
    const __m512 y2 = LOAD(rowsB[2] + t), y3 = LOAD(rowsB[3] + t);                 \
    FOR_ROWS(MULTIPLY)
#define STORE_ONE(R, J)                                                            \
    if (R < rowsHere && J < columnsHere) {                                         \
        float *target = c + (r0 + R) * ldc + j0 + J;                               \
        const float sum = _mm512_reduce_add_ps(s##R##J);                           \
        *target = add ? *target + sum : sum;                                       \
    }
#define STORE(R) STORE_ONE(R, 0) STORE_ONE(R, 1) STORE_ONE(R, 2) STORE_ONE(R, 3)

TARGET void kernels_product_transposed_avx512(const float *a, long lda, const float *b, long ldb,
                                              long m, long n, long k, float *c, long ldc, bool accumulate) {
    for (long depth = 0; depth < k; depth += DEPTH) {
        const long count = k - depth < DEPTH ? k - depth : DEPTH;
        const long full = count / LANES * LANES;
        const __mmask16 tail = (__mmask16)((1u << (count - full)) - 1u);
        const int add = accumulate || depth > 0;
        for (long r0 = 0; r0 < m; r0 += ROWS) {
            const long rowsHere = m - r0 < ROWS ? m - r0 : ROWS;
            // Rows past the last read row r0 again; their sums are never stored.
            const float *rowsA[ROWS];
            for (long r = 0; r < ROWS; r++) rowsA[r] = a + (r0 + (r < rowsHere ? r : 0)) * lda + depth;
            for (long j0 = 0; j0 < n; j0 += COLUMNS) {
                const long columnsHere = n - j0 < COLUMNS ? n - j0 : COLUMNS;
                const float *rowsB[COLUMNS];
                for (long j = 0; j < COLUMNS; j++) rowsB[j] = b + (j0 + (j < columnsHere ? j : 0)) * ldb + depth;
                FOR_ROWS(DECLARE)
                long t = 0;
#define LOAD(p) _mm512_loadu_ps(p)
                for (; t < full; t += LANES) {
                    STEP
                }
#undef LOAD
                if (tail) {
                    // Masked lanes load zeros: nothing past the row's end is read or summed.
#define LOAD(p) _mm512_maskz_loadu_ps(tail, p)
                    STEP
#undef LOAD
                }
                FOR_ROWS(STORE)
            }
        }
    }
}

#else

// Never called: the Swift side checks kernels_simd_has_avx512f() first.
void kernels_product_transposed_avx512(const float *a, long lda, const float *b, long ldb,
                                       long m, long n, long k, float *c, long ldc, bool accumulate) {
    (void)a; (void)lda; (void)b; (void)ldb; (void)m; (void)n; (void)k; (void)c; (void)ldc; (void)accumulate;
}

#endif
