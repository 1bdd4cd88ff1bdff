// Tiled transposes (see Transpose.c), written once for any vector width and included there once
// per instruction set. The includer defines NAME(x), TARGET, VEC, TILE (lanes: the tile's side),
// MASK, V_MASK(count) V_MASKLOAD(p, m) V_MASKSTORE(p, m, v) V_ZERO() and TRANSPOSE_TILE(v), which
// transposes the TILE × TILE tile held in v[0 ..< TILE] in place.

/// Loads the TILE × TILE tile at (`row`, `column`) of `source` and transposes it in `v`: its first
/// `rowsHere` rows, the columns in `columnMask`; everything else is zero and nothing past the
/// matrix is read.
TARGET static inline void NAME(loadTransposed)(const float *source, long sourceStride, long row, long column, long rowsHere,
                                         MASK columnMask, VEC v[TILE]) {
    for (int i = 0; i < TILE; i++) {
        v[i] = i < rowsHere ? V_MASKLOAD(source + (row + i) * sourceStride + column, columnMask) : V_ZERO();
    }
    TRANSPOSE_TILE(v);
}

/// Transposes the tile at (`row`, `column`) of `source` into `destination`.
TARGET static inline void NAME(transposeTile)(const float *source, long rows, long columns, long sourceStride,
                                        float *destination, long destinationStride, long row, long column) {
    const long rowsHere = rows - row < TILE ? rows - row : TILE;
    const MASK rowMask = V_MASK(rowsHere);
    const long columnsHere = columns - column < TILE ? columns - column : TILE;
    const MASK columnMask = V_MASK(columnsHere);
    // Rows and columns past the matrix are neither read nor written.
    VEC v[TILE];
    NAME(loadTransposed)(source, sourceStride, row, column, rowsHere, columnMask, v);
    for (int j = 0; j < TILE; j++) {
        if (j < columnsHere) V_MASKSTORE(destination + (column + j) * destinationStride + row, rowMask, v[j]);
    }
}

/// Tiles run down each band of TILE source columns before the next band, so the destination's
/// rows are written TILE at a time from start to end rather than TILE floats into every one of them
/// in turn: the channel-last convolution's output (`[pixel][filter]` into 128 planes for
/// resnet-c3s2) went faster, call-by-call pairs' median 0.974 of the row-by-row order, and
/// the other transposes measured the same either way (0.99–1.01).
TARGET void NAME(kernels_transpose)(const float *source, long rows, long columns, long sourceStride,
                                     float *destination, long destinationStride) {
    for (long column = 0; column < columns; column += TILE) {
        for (long row = 0; row < rows; row += TILE) {
            NAME(transposeTile)(source, rows, columns, sourceStride, destination, destinationStride, row, column);
        }
    }
}

/// The channel-last kernel's weight layout from the `[filter][channel][tap]` weight: one
/// transpose whose destination rows are permuted (source column `c·taps + t` to row
/// `t·channels + c`), TILE filters at a time across the columns. Per channel, a `rows × taps`
/// transpose (64 × 9) loaded 9 floats from each of 64 rows 9 KB apart (which share four L1
/// sets) and wrote 9 rows 64 KB apart: one thread's pack of the 4.7 MB weight of 8×256×14×14 →
/// 512 3×3 stride 2 took 11% of its forward pass in `perf`, this one 8%.
TARGET void NAME(kernels_pack_taps)(const float *source, long rows, long sourceStride, long channels, long taps,
                                     long columnBegin, long columnEnd, float *destination, long width) {
    for (long row = 0; row < rows; row += TILE) {
        const long rowsHere = rows - row < TILE ? rows - row : TILE;
        const MASK rowMask = V_MASK(rowsHere);
        long c = columnBegin / taps, t = columnBegin % taps;
        for (long column = columnBegin; column < columnEnd; column += TILE) {
            const long columnsHere = columnEnd - column < TILE ? columnEnd - column : TILE;
            const MASK columnMask = V_MASK(columnsHere);
            VEC v[TILE];
            NAME(loadTransposed)(source, sourceStride, row, column, rowsHere, columnMask, v);
            for (long j = 0; j < columnsHere; j++) {
                V_MASKSTORE(destination + (t * channels + c) * width + row, rowMask, v[j]);
                if (++t == taps) { t = 0; c++; }
            }
        }
    }
}
