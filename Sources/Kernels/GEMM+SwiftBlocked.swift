extension GEMM {
    /// Cache-blocked, SIMD-vectorized pure-Swift matrix multiply (row-major), the fallback
    /// and benchmark counterpart of OpenBLAS.
    ///
    /// - Complexity: O(m · n · k).
    public static func swiftBlocked(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        scale(c, rows: m, columns: n, ldc: ldc, by: beta)
        guard k > 0, alpha != 0 else { return }
        // Row i of C accumulates alpha·A[i,p]·B[p,:] over p: the innermost loop runs along
        // contiguous rows of B and C, which the compiler vectorizes.
        let kBlock = 256
        let packedB = UnsafeMutablePointer<Float>.allocate(capacity: kBlock * n)
        defer { packedB.deallocate() }
        var blockStart = 0
        while blockStart < k {
            let blockLength = min(kBlock, k - blockStart)
            for p in 0..<blockLength {
                let destination = packedB + p * n
                for column in 0..<n {
                    destination[column] = transposeB ? b[column * ldb + blockStart + p] : b[(blockStart + p) * ldb + column]
                }
            }
            for row in 0..<m {
                let cRow = c + row * ldc
                for p in 0..<blockLength {
                    let inner = blockStart + p
                    let factor = alpha * (transposeA ? a[inner * lda + row] : a[row * lda + inner])
                    let bRow = packedB + p * n
                    for column in 0..<n { cRow[column] += factor * bRow[column] }
                }
            }
            blockStart += blockLength
        }
    }
}
