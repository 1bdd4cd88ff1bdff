// The direct-convolution micro-kernels, written once for any vector width and included by
// DirectConvolution.c once per instruction set. The includer defines:
//   NAME(x)      the function name for this instruction set (x##_avx2, x##_avx512)
//   TARGET       the target attribute the functions compile for
//   VEC, LANES   the float vector type and its lane count; MASK, the lane-mask type
//   V_ZERO() V_LOAD(p) V_STORE(p, v) V_MASK(count) V_MASKLOAD(p, m) V_MASKSTORE(p, m, v)
//   V_BROADCAST(p) V_SET1(x) V_FMA(a, b, c) V_ADD(a, b) V_SUM(v)
//   MAX_VECTORS  the widest block, in vectors (2 with 16 registers, 4 with 32)
//   WG_TAPS      the taps one weight-gradient sweep sums (2 with 16 registers, 4 with 32)
// A block is 6 filters × up to MAX_VECTORS vectors of output columns (16 columns with AVX2, 64
// with AVX-512).
// No include guard: it is meant to be included more than once.

/// The accumulators of one block: filter `f`, vector `v` is `a<f><v>`. They are named variables,
/// not an array, and with AVX2 at most 12 (2 vectors) with 2 input vectors and 1 weight beside
/// them: with all 16 YMM registers live (4 filters × 3 vectors) clang shuffled and spilled them
/// inside the tap loop. AVX-512's 32 registers hold 6 × 4 accumulators, 4 inputs and 1 weight.
#define FOR_FILTERS(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define DECLARE(F) VEC a##F##0 = V_ZERO(), a##F##1 = V_ZERO(), a##F##2 = V_ZERO(), a##F##3 = V_ZERO();

/// One tap: `vectors` input vectors loaded once, each multiplied by the weights of the block's
/// first `filterCount` filters (6, or 4 or 2 in a product's last block).
#define MULTIPLY(F)                                                        \
    if (F < filterCount) {                                                 \
        weight = V_BROADCAST(w + F);                                       \
        a##F##0 = V_FMA(weight, x0, a##F##0);                              \
        if (vectors > 1) a##F##1 = V_FMA(weight, x1, a##F##1);             \
        if (vectors > 2) a##F##2 = V_FMA(weight, x2, a##F##2);             \
        if (vectors > 3) a##F##3 = V_FMA(weight, x3, a##F##3);             \
    }

/// Adds filter F's bias and stores its `vectors` vectors (only `lastCount` lanes of the last one).
#define STORE(F)                                                                            \
    if (F < filtersHere) {                                                                  \
        const VEC b = V_SET1(bias ? bias[F] : 0.0f);                                        \
        NAME(storeRow)(out[F], vectors, lastCount, V_ADD(a##F##0, b), V_ADD(a##F##1, b),    \
                       V_ADD(a##F##2, b), V_ADD(a##F##3, b));                               \
    }

/// Stores `vectors` (1–4) vectors of one filter's row; only `lastCount` lanes of the last.
TARGET INLINE void NAME(storeRow)(float *out, int vectors, long lastCount, VEC v0, VEC v1, VEC v2, VEC v3) {
    if (vectors > 1) V_STORE(out, v0);
    if (vectors > 2) V_STORE(out + LANES, v1);
    if (vectors > 3) V_STORE(out + 2 * LANES, v2);
    VEC last = vectors == 1 ? v0 : vectors == 2 ? v1 : vectors == 3 ? v2 : v3;
    float *lastOut = out + LANES * (vectors - 1);
    if (lastCount == LANES) {
        V_STORE(lastOut, last);
    } else {
        V_MASKSTORE(lastOut, V_MASK(lastCount), last);
    }
}

/// 6 filters × `V` × LANES output columns starting at `input`, over every tap. The bias is added
/// after the sum. `V` is a constant at each call site, so each compiles to its own loop.
#define BLOCK(V, FILTERS)                                                  \
    do {                                                                   \
        enum { vectors = V, filterCount = FILTERS };                       \
        FOR_FILTERS(DECLARE)                                               \
        for (long t = 0; t < tapCount; t++) {                              \
            const float *x = input + taps[t];                              \
            const float *w = weights + KERNELS_DIRECT_FILTER_BLOCK * t;    \
            const VEC x0 = V_LOAD(x);                                      \
            const VEC x1 = vectors > 1 ? V_LOAD(x + LANES) : x0;           \
            const VEC x2 = vectors > 2 ? V_LOAD(x + 2 * LANES) : x0;       \
            const VEC x3 = vectors > 3 ? V_LOAD(x + 3 * LANES) : x0;       \
            VEC weight;                                                    \
            FOR_FILTERS(MULTIPLY)                                          \
        }                                                                  \
        FOR_FILTERS(STORE)                                                 \
    } while (0)

/// Runs `CASES(6)`, `CASES(4)` or `CASES(2)`: the block shape (rows of a product, filters of a
/// convolution) that covers `count` (1–6).
#define BY_ROW_COUNT(count, CASES)  \
    if ((count) > 4) {              \
        CASES(6)                    \
    } else if ((count) > 2) {       \
        CASES(4)                    \
    } else {                        \
        CASES(2)                    \
    }

/// Each block shape for 6 filters, and for a last block of 1–4 (4 or 2 computed): 32 filters
/// end in a block of 2, which as 6 cost a ninth of the pass in multiply-adds thrown away.
#define BLOCK_FUNCTION(V, FILTERS)                                                                            \
    TARGET static void NAME(block##V##f##FILTERS)(const float *input, const long *taps, long tapCount,         \
                                                 const float *weights, const float *bias,                     \
                                                 float *const out[KERNELS_DIRECT_FILTER_BLOCK],               \
                                                 long filtersHere, long lastCount) {                          \
        BLOCK(V, FILTERS);                                                                                    \
    }
#define BLOCK_FUNCTIONS(FILTERS) BLOCK_FUNCTION(1, FILTERS) BLOCK_FUNCTION(2, FILTERS)
#if MAX_VECTORS > 2
#define WIDE_BLOCK_FUNCTIONS(FILTERS) BLOCK_FUNCTION(3, FILTERS) BLOCK_FUNCTION(4, FILTERS)
#else
#define WIDE_BLOCK_FUNCTIONS(FILTERS)
#endif
BLOCK_FUNCTIONS(6) WIDE_BLOCK_FUNCTIONS(6)
BLOCK_FUNCTIONS(4) WIDE_BLOCK_FUNCTIONS(4)
BLOCK_FUNCTIONS(2) WIDE_BLOCK_FUNCTIONS(2)

#if MAX_VECTORS > 2
#define WIDE_BLOCK_CASES(FILTERS)                                                                             \
    case 3: NAME(block3f##FILTERS)(input, taps, tapCount, weights, bias, out, filtersHere, lastCount); break; \
    case 4: NAME(block4f##FILTERS)(input, taps, tapCount, weights, bias, out, filtersHere, lastCount); break;
#else
#define WIDE_BLOCK_CASES(FILTERS)
#endif
#define BLOCK_CASES(FILTERS)                                                                                  \
    switch (vectors) {                                                                                        \
    case 1: NAME(block1f##FILTERS)(input, taps, tapCount, weights, bias, out, filtersHere, lastCount); break; \
    case 2: NAME(block2f##FILTERS)(input, taps, tapCount, weights, bias, out, filtersHere, lastCount); break; \
    WIDE_BLOCK_CASES(FILTERS)                                                                                 \
    default: break;                                                                                           \
    }

/// The block of `vectors` (1...MAX_VECTORS) vectors, the last with `lastCount` lanes, for the
/// block's `filtersHere` filters.
TARGET INLINE void NAME(block)(long vectors, const float *input, const long *taps, long tapCount,
                               const float *weights, const float *bias,
                               float *const out[KERNELS_DIRECT_FILTER_BLOCK], long filtersHere, long lastCount) {
    BY_ROW_COUNT(filtersHere, BLOCK_CASES)
}
#undef BLOCK_CASES
#undef WIDE_BLOCK_CASES
#undef BLOCK_FUNCTIONS
#undef WIDE_BLOCK_FUNCTIONS

/// Two output rows at once for narrow outputs (at most half a block wide): `V` vectors of each
/// row, the second row's inputs `nextRow` floats further on, so a block fills its accumulators
/// and each broadcast weight feeds both rows. One row of a 32-wide output left 12 of AVX-512's
/// 24 accumulators idle and spent a broadcast per two multiply-adds. Forward, call-by-call pairs
/// (two rows ÷ one): 8×3×32×32 → 64 0.848, 64×3×32×32 → 16 0.852, 32×1×28×28 → 32 0.875,
/// dlfs-simpleconv (24 wide) 0.874.
#define ROW_PAIR_BLOCK(V, FILTERS)                                                                             \
    do {                                                                                                       \
        enum { vectors = 2 * V, filterCount = FILTERS, rowVectors = V };                                       \
        FOR_FILTERS(DECLARE)                                                                                   \
        for (long t = 0; t < tapCount; t++) {                                                                  \
            const float *x = input + taps[t];                                                                  \
            const float *w = weights + KERNELS_DIRECT_FILTER_BLOCK * t;                                        \
            const VEC x0 = V_LOAD(x);                                                                          \
            const VEC x1 = V > 1 ? V_LOAD(x + LANES) : V_LOAD(x + nextRow);                                    \
            const VEC x2 = V > 1 ? V_LOAD(x + nextRow) : x0;                                                   \
            const VEC x3 = V > 1 ? V_LOAD(x + nextRow + LANES) : x0;                                           \
            VEC weight;                                                                                        \
            FOR_FILTERS(MULTIPLY)                                                                              \
        }                                                                                                      \
        FOR_FILTERS(ROW_PAIR_STORE)                                                                            \
    } while (0)
#define ROW_PAIR_STORE(F)                                                                                      \
    if (F < filtersHere) {                                                                                     \
        const VEC b = V_SET1(bias ? bias[F] : 0.0f);                                                           \
        const VEC second0 = rowVectors > 1 ? a##F##2 : a##F##1;                                                \
        NAME(storeRow)(out[F], rowVectors, lastCount, V_ADD(a##F##0, b), V_ADD(a##F##1, b), b, b);             \
        NAME(storeRow)(out[F] + outputWidth, rowVectors, lastCount, V_ADD(second0, b), V_ADD(a##F##3, b), b, b); \
    }
#define ROW_PAIR_FUNCTION(V, FILTERS)                                                                          \
    TARGET static void NAME(rowPair##V##f##FILTERS)(const float *input, long nextRow, const long *taps,         \
                                                   long tapCount, const float *weights, const float *bias,      \
                                                   float *const out[KERNELS_DIRECT_FILTER_BLOCK],               \
                                                   long outputWidth, long filtersHere, long lastCount) {        \
        ROW_PAIR_BLOCK(V, FILTERS);                                                                            \
    }
#if MAX_VECTORS > 2
#define ROW_PAIR_FUNCTIONS(FILTERS) ROW_PAIR_FUNCTION(1, FILTERS) ROW_PAIR_FUNCTION(2, FILTERS)
#define ROW_PAIR_WIDE_CASE(FILTERS)                                                                            \
    case 2: NAME(rowPair2f##FILTERS)(input, nextRow, taps, tapCount, weights, bias, out, outputWidth, filtersHere, lastCount); break;
#else
#define ROW_PAIR_FUNCTIONS(FILTERS) ROW_PAIR_FUNCTION(1, FILTERS)
#define ROW_PAIR_WIDE_CASE(FILTERS)
#endif
ROW_PAIR_FUNCTIONS(6)
ROW_PAIR_FUNCTIONS(4)
ROW_PAIR_FUNCTIONS(2)
#define ROW_PAIR_CASES(FILTERS)                                                                                \
    switch (vectors) {                                                                                         \
    case 1: NAME(rowPair1f##FILTERS)(input, nextRow, taps, tapCount, weights, bias, out, outputWidth, filtersHere, lastCount); break; \
    ROW_PAIR_WIDE_CASE(FILTERS)                                                                                \
    default: break;                                                                                            \
    }

/// Two rows of `vectors` (1 or MAX_VECTORS / 2) vectors each, `nextRow` floats apart in the input.
TARGET INLINE void NAME(rowPair)(long vectors, const float *input, long nextRow, const long *taps, long tapCount,
                                 const float *weights, const float *bias, float *const out[KERNELS_DIRECT_FILTER_BLOCK],
                                 long outputWidth, long filtersHere, long lastCount) {
    BY_ROW_COUNT(filtersHere, ROW_PAIR_CASES)
}
#undef ROW_PAIR_CASES
#undef ROW_PAIR_WIDE_CASE
#undef ROW_PAIR_FUNCTIONS
#undef ROW_PAIR_FUNCTION
#undef ROW_PAIR_STORE
#undef ROW_PAIR_BLOCK

TARGET void NAME(kernels_direct_convolution)(const float *padded, long rowStride, long strideH,
                                            const long *taps, long tapCount,
                                            const float *packedWeights, const float *bias, long filters,
                                            float *output, long outputHeight, long outputWidth,
                                            long rowBegin, long rowEnd) {
    const long planeSize = outputHeight * outputWidth;
    const long blocks = (filters + KERNELS_DIRECT_FILTER_BLOCK - 1) / KERNELS_DIRECT_FILTER_BLOCK;
    const long widest = MAX_VECTORS * LANES;
    // Narrow outputs go two rows at a time (see ROW_PAIR_BLOCK); a last odd row alone.
    const int pairsRows = outputWidth <= widest / 2;
    for (long oh = rowBegin; oh < rowEnd; oh++) {
        const float *row = padded + oh * strideH * rowStride;
        const int paired = pairsRows && oh + 1 < rowEnd;
        for (long b = 0; b < blocks; b++) {
            const long first = b * KERNELS_DIRECT_FILTER_BLOCK;
            const long filtersHere = filters - first < KERNELS_DIRECT_FILTER_BLOCK ? filters - first : KERNELS_DIRECT_FILTER_BLOCK;
            const float *weights = packedWeights + b * tapCount * KERNELS_DIRECT_FILTER_BLOCK;
            const float *blockBias = bias ? bias + first : 0;
            float *out[KERNELS_DIRECT_FILTER_BLOCK];
            for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) {
                out[f] = output + (first + (f < filtersHere ? f : 0)) * planeSize + oh * outputWidth;
            }
            if (paired) {
                const long vectors = (outputWidth + LANES - 1) / LANES;
                NAME(rowPair)(vectors, row, strideH * rowStride, taps, tapCount, weights, blockBias, out,
                              outputWidth, filtersHere, outputWidth - (vectors - 1) * LANES);
                continue;
            }
            float *at[KERNELS_DIRECT_FILTER_BLOCK];
            for (long ow = 0; ow < outputWidth; ow += widest) {
                const long rest = outputWidth - ow < widest ? outputWidth - ow : widest;
                const long vectors = (rest + LANES - 1) / LANES;
                for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) at[f] = out[f] + ow;
                NAME(block)(vectors, row + ow, taps, tapCount, weights, blockBias, at, filtersHere,
                            rest - (vectors - 1) * LANES);
            }
        }
        oh += paired;
    }
}

/// Cache lines of one row of a product's column block (64 floats with AVX-512, 16 with AVX2).
#define PRODUCT_LINES (MAX_VECTORS * LANES / 16)
/// Rows of `B` one pass of a product's column block covers: 32 KiB of `B`, which stays in L1
/// while every row block of `A` passes over it (all 512 rows of a 512-channel layer were 128 KiB
/// and ran from L2, slower than OpenBLAS).
#define PRODUCT_DEPTH (8192 / (MAX_VECTORS * LANES))

/// Adds what `C` holds to filter F's accumulators, for passes after a product's first.
#define PRODUCT_ACCUMULATE(F)                                                                  \
    if (F < filtersHere) {                                                                     \
        a##F##0 = V_ADD(a##F##0, vectors > 1 ? V_LOAD(out[F]) : V_MASKLOAD(out[F], tail));     \
        if (vectors > 1) a##F##1 = V_ADD(a##F##1, vectors > 2 ? V_LOAD(out[F] + LANES) : V_MASKLOAD(out[F] + LANES, tail)); \
        if (vectors > 2) a##F##2 = V_ADD(a##F##2, vectors > 3 ? V_LOAD(out[F] + 2 * LANES) : V_MASKLOAD(out[F] + 2 * LANES, tail)); \
        if (vectors > 3) a##F##3 = V_ADD(a##F##3, V_MASKLOAD(out[F] + 3 * LANES, tail));       \
    }

/// Where row F of `A` starts: rows past the block's last read row 0 again (never stored).
#define PRODUCT_ROW(F) const long row##F = (F < filtersHere ? F : 0) * aRow;
/// MULTIPLY with row F of `A`, for the `rowCount` rows the block function computes.
#define PRODUCT_MULTIPLY(F)                                                \
    if (F < rowCount) {                                                    \
        weight = V_BROADCAST(w + row##F);                                  \
        a##F##0 = V_FMA(weight, x0, a##F##0);                              \
        if (vectors > 1) a##F##1 = V_FMA(weight, x1, a##F##1);             \
        if (vectors > 2) a##F##2 = V_FMA(weight, x2, a##F##2);             \
        if (vectors > 3) a##F##3 = V_FMA(weight, x3, a##F##3);             \
    }

/// Vector `i` of a block's row of `B`: the last one masked in a block that ends mid-vector, so
/// nothing past the row's last column is read (B may be a caller's tensor).
#define PRODUCT_LOAD(i) (masked && i == vectors - 1 ? V_MASKLOAD(x + i * LANES, tail) : V_LOAD(x + i * LANES))

/// Lines of one row of `A`'s piece for a pass (PRODUCT_DEPTH floats, one more line when the row
/// starts off a line). With `prefetchA` (a row-major `A` streaming from memory: the 1×1 weight
/// gradient's images) each block first asks for the next block's piece into L2: 6 rows far
/// apart, each read for only PRODUCT_DEPTH floats, too short a stream for the hardware
/// prefetcher.
#define PRODUCT_A_LINES (PRODUCT_DEPTH / 16 + 1)

/// One step of a product block: row `t` of `B` times column `t` of the block's rows of `A`.
#define PRODUCT_STEP                                                                                   \
    {                                                                                                  \
        const float *x = input + taps[t];                                                              \
        const float *w = weights + aColumn * t;                                                        \
        const VEC x0 = PRODUCT_LOAD(0);                                                                \
        const VEC x1 = vectors > 1 ? PRODUCT_LOAD(1) : x0;                                             \
        const VEC x2 = vectors > 2 ? PRODUCT_LOAD(2) : x0;                                             \
        const VEC x3 = vectors > 3 ? PRODUCT_LOAD(3) : x0;                                             \
        VEC weight;                                                                                    \
        FOR_FILTERS(PRODUCT_MULTIPLY)                                                                  \
    }

/// BLOCK for the product, adding to `C` when `accumulate`, and prefetching the piece of
/// `B` the product reads next: row block `r` fetches lines r·k to (r + 1)·k of its
/// `aheadLines`, so the rows of `B` (many separate streams, more than the hardware prefetcher
/// follows) arrive before they are needed.
#define PRODUCT_BLOCK_FUNCTION(V, MASKED, ROWS)                                                                \
    TARGET static void NAME(productBlock##V##MASKED##r##ROWS)(const float *input, const long *taps, long tapCount,    \
                                             const float *weights, long aRow, long aColumn,                  \
                                             float *const out[KERNELS_DIRECT_FILTER_BLOCK], const float *bias, \
                                             long filtersHere, long lastCount, int accumulate,                \
                                             const float *ahead, const long *aheadTaps, long aheadLines, long firstLine) { \
        enum { vectors = V, masked = MASKED, rowCount = ROWS };                                                \
        const MASK tail = V_MASK(lastCount);                                                                   \
        FOR_FILTERS(PRODUCT_ROW)                                                                               \
        FOR_FILTERS(DECLARE)                                                                                   \
        /* The steps that prefetch a line come first, in a loop of their own: most blocks have      \
           none, and checking each step kept the loop's pointers on the stack. */                      \
        const long prefetching = aheadLines - firstLine;                                                       \
        const long prefetchEnd = prefetching < 0 ? 0 : prefetching < tapCount ? prefetching : tapCount;       \
        long t = 0;                                                                                            \
        for (; t < prefetchEnd; t++) {                                                                         \
            const long line = firstLine + t;                                                                   \
            _mm_prefetch((const char *)(ahead + aheadTaps[line / PRODUCT_LINES] + line % PRODUCT_LINES * 16), _MM_HINT_T0); \
            PRODUCT_STEP                                                                                       \
        }                                                                                                      \
        for (; t < tapCount; t++) {                                                                            \
            PRODUCT_STEP                                                                                       \
        }                                                                                                      \
        if (accumulate) {                                                                                      \
            FOR_FILTERS(PRODUCT_ACCUMULATE)                                                                    \
        }                                                                                                      \
        FOR_FILTERS(STORE)                                                                                     \
    }
/// Each block shape for 6 rows, and for the last block of a product whose row count is not a
/// multiple of 6: 2 or 4 rows (128 or 64 rows leave 2 or 4), which would otherwise multiply 6
/// rows and keep the few (3% of resnet-c3s2's forward product).
#if MAX_VECTORS > 2
#define PRODUCT_BLOCK_FUNCTIONS(ROWS)                                                                         \
    PRODUCT_BLOCK_FUNCTION(1, 0, ROWS) PRODUCT_BLOCK_FUNCTION(2, 0, ROWS) PRODUCT_BLOCK_FUNCTION(1, 1, ROWS)  \
    PRODUCT_BLOCK_FUNCTION(2, 1, ROWS) PRODUCT_BLOCK_FUNCTION(3, 0, ROWS) PRODUCT_BLOCK_FUNCTION(4, 0, ROWS)  \
    PRODUCT_BLOCK_FUNCTION(3, 1, ROWS) PRODUCT_BLOCK_FUNCTION(4, 1, ROWS)
#else
#define PRODUCT_BLOCK_FUNCTIONS(ROWS)                                                                         \
    PRODUCT_BLOCK_FUNCTION(1, 0, ROWS) PRODUCT_BLOCK_FUNCTION(2, 0, ROWS) PRODUCT_BLOCK_FUNCTION(1, 1, ROWS)  \
    PRODUCT_BLOCK_FUNCTION(2, 1, ROWS)
#endif
PRODUCT_BLOCK_FUNCTIONS(6)
PRODUCT_BLOCK_FUNCTIONS(4)
PRODUCT_BLOCK_FUNCTIONS(2)

/// `C = A·B` (`C += A·B` with `accumulate`) for `B` with `k` rows at `b + rowOffsets[i]`, `n`
/// contiguous columns each, and `A` (`m × k`) with element (r, i) at `a[r·aRow + i·aColumn]`, so
/// either layout of `A` is read in place: a 1×1 convolution of `k` channels, which is what
/// Winograd's per-position products are. Column blocks are the outer loop, then passes of
/// PRODUCT_DEPTH rows, so the piece of `B` a pass reads stays in L1 while every row block of `A`
/// passes over it. `bias` (m floats, or NULL) is added as the last pass stores each block.
TARGET void NAME(kernels_product)(const float *b, const long *rowOffsets, long k,
                                 const float *a, long aRow, long aColumn, long m, float *c, long ldc, long n,
                                 const float *bias, bool accumulate, bool prefetchA) {
    const long blocks = (m + KERNELS_DIRECT_FILTER_BLOCK - 1) / KERNELS_DIRECT_FILTER_BLOCK;
    const long widest = MAX_VECTORS * LANES;
    for (long column = 0; column < n; column += widest) {
        const long rest = n - column < widest ? n - column : widest;
        const long vectors = (rest + LANES - 1) / LANES;
        const long lastCount = rest - (vectors - 1) * LANES;
        for (long depth = 0; depth < k; depth += PRODUCT_DEPTH) {
            const long rows = k - depth < PRODUCT_DEPTH ? k - depth : PRODUCT_DEPTH;
            // The next pass's piece of B: the next rows of this column block, or the first
            // rows of the next column block (none after the last).
            const int lastPass = depth + rows == k;
            const float *ahead = b + (lastPass ? column + widest : column);
            const long aheadDepth = lastPass ? 0 : depth + rows;
            const long aheadRows = lastPass && column + widest >= n ? 0
                : (k - aheadDepth < PRODUCT_DEPTH ? k - aheadDepth : PRODUCT_DEPTH);
            for (long block = 0; block < blocks; block++) {
                const long first = block * KERNELS_DIRECT_FILTER_BLOCK;
                const long rowsHere = m - first < KERNELS_DIRECT_FILTER_BLOCK ? m - first : KERNELS_DIRECT_FILTER_BLOCK;
                const float *weights = a + first * aRow + depth * aColumn;
                float *at[KERNELS_DIRECT_FILTER_BLOCK];
                for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) {
                    at[f] = c + (first + (f < rowsHere ? f : 0)) * ldc + column;
                }
                const float *input = b + column;
                const long *taps = rowOffsets + depth;
                // The next block's piece of A into L2: the next 6 rows, else the next pass's
                // columns of the first rows, else (next column block) the first rows' first columns.
                const float *aheadA = !prefetchA || aColumn != 1 ? 0
                    : block + 1 < blocks ? weights + KERNELS_DIRECT_FILTER_BLOCK * aRow
                    : !lastPass ? a + depth + rows
                    : column + widest < n ? a : 0;
                if (aheadA) {
                    for (long row = 0; row < KERNELS_DIRECT_FILTER_BLOCK; row++) {
                        for (long line = 0; line < PRODUCT_A_LINES; line++) {
                            _mm_prefetch((const char *)(aheadA + row * aRow + line * 16), _MM_HINT_T1);
                        }
                    }
                }
#define PRODUCT_ARGUMENTS input, taps, rows, weights, aRow, aColumn, at, bias && lastPass ? bias + first : 0, rowsHere, lastCount, accumulate || depth > 0, \
                          ahead, rowOffsets + aheadDepth, PRODUCT_LINES * aheadRows, block * rows
#if MAX_VECTORS > 2
#define PRODUCT_WIDE_CASES(ROWS)                                                                  \
                case 6: NAME(productBlock30r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                case 7: NAME(productBlock31r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                case 8: NAME(productBlock40r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                case 9: NAME(productBlock41r##ROWS)(PRODUCT_ARGUMENTS); break;
#else
#define PRODUCT_WIDE_CASES(ROWS)
#endif
#define PRODUCT_CASES(ROWS)                                                                       \
                switch (vectors * 2 + (lastCount < LANES)) {                                      \
                case 2: NAME(productBlock10r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                case 3: NAME(productBlock11r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                case 4: NAME(productBlock20r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                case 5: NAME(productBlock21r##ROWS)(PRODUCT_ARGUMENTS); break;                  \
                PRODUCT_WIDE_CASES(ROWS)                                                          \
                default: break;                                                                   \
                }
                BY_ROW_COUNT(rowsHere, PRODUCT_CASES)
#undef PRODUCT_CASES
#undef PRODUCT_WIDE_CASES
#undef PRODUCT_ARGUMENTS
            }
        }
    }
}

/// Output-gradient floats per filter swept before each flush to the weight gradient: a band of
/// whole rows this long keeps its 6 filters' rows (24 KiB) in L1 while every group of taps sweeps
/// them. Each flush reduces 24 vectors to sums, so bands should be long: at 512 floats a 24×24
/// plane (dlfs-simpleconv) took a band of 21 rows and one of 3, and call-by-call pairs put 1024
/// ahead at 0.913–0.915 there (1×28×28 → 32: 0.942, 3×32×32: 0.96–0.975, the 7×7 stem's 112-wide
/// rows: 1.00; 2048 no better).
#define WEIGHT_GRADIENT_BAND_FLOATS 1024

#define WG_DECLARE(F) VEC g##F##0 = V_ZERO(), g##F##1 = V_ZERO(), g##F##2 = V_ZERO(), g##F##3 = V_ZERO();
/// One vector of LANES output positions: filter F's gradient times the WG_TAPS taps' inputs.
#define WG_MULTIPLY(F)                                              \
    {                                                               \
        const VEC dy = LOAD(dyRows[F] + ow);                        \
        g##F##0 = V_FMA(dy, x0, g##F##0);                           \
        g##F##1 = V_FMA(dy, x1, g##F##1);                           \
        if (WG_TAPS > 2) g##F##2 = V_FMA(dy, x2, g##F##2);          \
        if (WG_TAPS > 2) g##F##3 = V_FMA(dy, x3, g##F##3);          \
    }
#define WG_FLUSH(F)                                                                         \
    if (F < filtersHere) {                                                                  \
        float *sums = weightGradient + (first + F) * tapCount + t;                          \
        sums[0] += V_SUM(g##F##0);                                                          \
        if (swept > 1) sums[1] += V_SUM(g##F##1);                                           \
        if (WG_TAPS > 2 && swept > 2) sums[2] += V_SUM(g##F##2);                            \
        if (WG_TAPS > 2 && swept > 3) sums[3] += V_SUM(g##F##3);                            \
    }
/// The inputs of the swept taps at column `ow` (LOAD decides plain or masked).
#define WG_LOAD_INPUTS                                                                      \
    const VEC x0 = LOAD(row + offset[0] + ow), x1 = LOAD(row + offset[1] + ow);             \
    const VEC x2 = WG_TAPS > 2 ? LOAD(row + offset[2] + ow) : x0;                           \
    const VEC x3 = WG_TAPS > 2 ? LOAD(row + offset[3] + ow) : x0;

TARGET void NAME(kernels_direct_weight_gradient)(const float *padded, long rowStride, long strideH,
                                                const long *taps, long tapCount, long tapBegin, long tapEnd,
                                                const float *outputGradient, long filters,
                                                long outputHeight, long outputWidth, float *weightGradient) {
    const long planeSize = outputHeight * outputWidth;
    const long blocks = (filters + KERNELS_DIRECT_FILTER_BLOCK - 1) / KERNELS_DIRECT_FILTER_BLOCK;
    const long fullWidth = outputWidth / LANES * LANES, tail = outputWidth - fullWidth;
    const long band = outputWidth >= WEIGHT_GRADIENT_BAND_FLOATS ? 1 : WEIGHT_GRADIENT_BAND_FLOATS / outputWidth;
    for (long top = 0; top < outputHeight; top += band) {
        const long bottom = top + band < outputHeight ? top + band : outputHeight;
        for (long b = 0; b < blocks; b++) {
            const long first = b * KERNELS_DIRECT_FILTER_BLOCK;
            const long filtersHere = filters - first < KERNELS_DIRECT_FILTER_BLOCK ? filters - first : KERNELS_DIRECT_FILTER_BLOCK;
            for (long t = tapBegin; t < tapEnd; t += WG_TAPS) {
                // WG_TAPS taps per sweep: each gradient vector loaded feeds WG_TAPS accumulators,
                // each input vector 6. Past the last tap, the last one is swept again and not flushed.
                const long swept = tapEnd - t < WG_TAPS ? tapEnd - t : WG_TAPS;
                long offset[4];
                for (long i = 0; i < 4; i++) offset[i] = taps[t + (i < swept ? i : swept - 1)];
                FOR_FILTERS(WG_DECLARE)
                for (long oh = top; oh < bottom; oh++) {
                    const float *row = padded + oh * strideH * rowStride;
                    const float *dyRows[KERNELS_DIRECT_FILTER_BLOCK];
                    for (long f = 0; f < KERNELS_DIRECT_FILTER_BLOCK; f++) {
                        // Missing filters read filter `first`'s row; their sums are never flushed.
                        dyRows[f] = outputGradient + (first + (f < filtersHere ? f : 0)) * planeSize + oh * outputWidth;
                    }
                    // Full vectors with plain loads: with AVX2, 12 accumulators, 2 inputs and 1
                    // gradient vector fill 15 registers (a mask held across this loop made 16 and
                    // spills); AVX-512's 32 hold 24 accumulators, 4 inputs and the gradient.
#define LOAD(p) V_LOAD(p)
                    for (long ow = 0; ow < fullWidth; ow += LANES) {
                        WG_LOAD_INPUTS
                        FOR_FILTERS(WG_MULTIPLY)
                    }
#undef LOAD
                    if (tail) {
                        // Masked lanes load zeros on both sides, so pixels past the row's last
                        // window (even infinities) never reach the sum.
                        const MASK mask = V_MASK(tail);
#define LOAD(p) V_MASKLOAD(p, mask)
                        const long ow = fullWidth;
                        WG_LOAD_INPUTS
                        FOR_FILTERS(WG_MULTIPLY)
#undef LOAD
                    }
                }
                FOR_FILTERS(WG_FLUSH)
            }
        }
    }
}


#undef FOR_FILTERS
#undef DECLARE
#undef MULTIPLY
#undef STORE
#undef BLOCK
#undef BLOCK_FUNCTION
#undef PRODUCT_LINES
#undef PRODUCT_BLOCK_FUNCTION
#undef PRODUCT_BLOCK_FUNCTIONS
#undef PRODUCT_DEPTH
#undef PRODUCT_A_LINES
#undef PRODUCT_MULTIPLY
#undef PRODUCT_ROW
#undef PRODUCT_LOAD
#undef PRODUCT_ACCUMULATE
#undef WEIGHT_GRADIENT_BAND_FLOATS
#undef WG_DECLARE
#undef WG_MULTIPLY
#undef WG_FLUSH
#undef WG_LOAD_INPUTS
#undef BY_ROW_COUNT
