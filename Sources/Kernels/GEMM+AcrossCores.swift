extension GEMMBackend {
    /// ``multiply(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` spread over
    /// Kernels' threads, for a GEMM that runs alone (nothing else of the call in flight).
    ///
    /// With OpenBLAS the product is cut into blocks of columns (or rows, when `C` is taller than
    /// wide), each a single-threaded OpenBLAS call on one of Kernels' threads. OpenBLAS's own
    /// threading is not used because its thread count is process-wide and concurrent Kernels
    /// calls lower it to one while they run (``GEMM/withSingleThreadedOpenBLAS(_:)``), and
    /// OpenBLAS on one and on two threads rounds differently for some shapes: a call that
    /// overlapped another's scope gave different bits from the same call made alone. Cut here,
    /// the bits depend only on the shapes and on Kernels' thread count.
    ///
    /// The other backends split their work the same way whatever else runs; they are called as
    /// is, as is every backend when `split` is false (the caller is already one of several threads).
    func multiply(
        splittingAcrossCores split: Bool, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard split, self == .openBLAS else {
            return multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                            alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        // Callers on a hot path already hold a scope (nested ones only count); this one makes
        // the function safe on its own.
        GEMM.withSingleThreadedOpenBLAS {
            if n >= m {
                GEMMBlocks.forEach(n, otherSide: m, depth: k) { columns in
                    // Columns of op(B) are columns of B, or rows of B when it is transposed.
                    let bBlock = transposeB ? b + columns.lowerBound * ldb : b + columns.lowerBound
                    GEMM.openBLAS(transposeA: transposeA, transposeB: transposeB, m: m, n: columns.count, k: k,
                                  alpha: alpha, a: a, lda: lda, b: bBlock, ldb: ldb,
                                  beta: beta, c: c + columns.lowerBound, ldc: ldc)
                }
            } else {
                GEMMBlocks.forEach(m, otherSide: n, depth: k) { rows in
                    // Rows of op(A) are rows of A, or columns of A when it is transposed.
                    let aBlock = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
                    GEMM.openBLAS(transposeA: transposeA, transposeB: transposeB, m: rows.count, n: n, k: k,
                                  alpha: alpha, a: aBlock, lda: lda, b: b, ldb: ldb,
                                  beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
                }
            }
        }
    }
}

/// How ``GEMMBackend/multiply(splittingAcrossCores:transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``
/// cuts one side of a product: one block per thread, block edges on multiples of 16 (a multiple
/// of OpenBLAS's sgemm micro-kernel edges on x86-64) so no block ends in a ragged micro-tile but
/// the last.
enum GEMMBlocks {
    static let alignment = 16

    static func forEach(_ length: Int, otherSide: Int, depth: Int, _ body: (Range<Int>) -> Void) {
        let units = (length + alignment - 1) / alignment
        Parallel.forEach(units, workPerItem: alignment * otherSide * depth) { unitRange in
            body(unitRange.lowerBound * alignment..<min(length, unitRange.upperBound * alignment))
        }
    }
}
