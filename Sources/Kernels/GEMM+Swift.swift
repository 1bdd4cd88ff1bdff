/// Pure-Swift matrix multiplies with the same signature as ``GEMM/openBLAS(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
extension GEMM {
    /// The textbook triple loop, accumulating each dot product in `Double`: slow, but simple
    /// enough to trust as a reference.
    ///
    /// - Complexity: O(m · n · k).
    public static func swiftNaive(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for row in 0..<m {
            for column in 0..<n {
                var dot = 0.0
                for inner in 0..<k {
                    let left = transposeA ? a[inner * lda + row] : a[row * lda + inner]
                    let right = transposeB ? b[column * ldb + inner] : b[inner * ldb + column]
                    dot += Double(left) * Double(right)
                }
                let scaled = alpha * Float(dot)
                let previous = c[row * ldc + column]
                c[row * ldc + column] = beta == 0 ? scaled : scaled + beta * previous
            }
        }
    }
}
