import Testing
@testable import Kernels

/// The product micro-kernel against a float64 product, on every build this CPU runs: row counts
/// that leave a partial block of 6 (each of 1–5 rows), inner sizes past one 128-row pass, column counts that end
/// mid-vector, both layouts of `A`, and a `B` with exactly `k · n` floats (so a read past a
/// row's last column would leave the buffer: the address sanitizer's CI run checks that); then
/// the same product added to what `C` holds (that call also prefetching `A`'s rows, which must
/// not change a bit).
@Suite struct ProductKernelTests {
    /// A bias is added once, as the last of several 128-row passes stores, to each row's own
    /// columns only, also after a first narrow call over a row's leading columns.
    @Test func addsTheBiasOnce() {
        var generator = SeededGenerator(seed: 92)
        let (m, n, k) = (13, 70, 300)
        let a = (0..<m * k).map { _ in Float.random(in: -1...1, using: &generator) }
        let b = (0..<k * n).map { _ in Float.random(in: -1...1, using: &generator) }
        let bias = (0..<m).map { _ in Float.random(in: -1...1, using: &generator) }
        var expected = [Double](repeating: 0, count: m * n)
        for row in 0..<m {
            for column in 0..<n {
                expected[row * n + column] = Double(bias[row]) + (0..<k).reduce(0.0) { $0 + Double(a[row * k + $1]) * Double(b[$1 * n + column]) }
            }
        }
        for kernel in DirectConvolution.InstructionSet.allCases.filter(\.isSupported).map(ProductKernel.init) {
            var c = [Float](repeating: .nan, count: m * n)
            (0..<k).map { $0 * n }.withUnsafeBufferPointer { rowOffsets in
                b.withUnsafeBufferPointer { b in
                    c.withUnsafeMutableBufferPointer { c in
                        for (start, width) in [(0, 5), (5, n - 5)] {
                            kernel.multiply(m: m, n: width, a: a, aRow: k, aColumn: 1, b: b.baseAddress! + start,
                                            rowOffsets: rowOffsets, c: c.baseAddress! + start, ldc: n, bias: bias)
                        }
                    }
                }
            }
            #expect(relativeError(c, expected) <= 1e-5, "\(kernel.instructionSet)")
        }
    }

    @Test func matchesAFloat64Product() {
        var generator = SeededGenerator(seed: 91)
        // Last row blocks of 1 to 5 rows (13, 8, 9, 16, 5: the 2-, 4- and 6-row block functions).
        let shapes = [(m: 1, n: 1, k: 1), (5, 17, 3), (6, 64, 128), (13, 70, 129), (16, 150, 300), (7, 200, 64),
                      (8, 33, 20), (9, 65, 131)]
        let kernels = DirectConvolution.InstructionSet.allCases.filter(\.isSupported).map(ProductKernel.init)
        for (m, n, k) in shapes {
            let a = (0..<m * k).map { _ in Float.random(in: -1...1, using: &generator) }
            let b = (0..<k * n).map { _ in Float.random(in: -1...1, using: &generator) }
            for transposedA in [false, true] {
                // Row-major A, or its transpose stored row-major.
                let (aRow, aColumn) = transposedA ? (1, m) : (k, 1)
                var expected = [Double](repeating: 0, count: m * n)
                for row in 0..<m {
                    for column in 0..<n {
                        for i in 0..<k { expected[row * n + column] += Double(a[row * aRow + i * aColumn]) * Double(b[i * n + column]) }
                    }
                }
                for kernel in kernels {
                    // Columns past n in each row of C must stay untouched.
                    let ldc = n + 3
                    var c = [Float](repeating: .infinity, count: m * ldc)
                    for accumulate in [false, true] {
                        a.withUnsafeBufferPointer { a in
                            b.withUnsafeBufferPointer { b in
                                (0..<k).map { $0 * n }.withUnsafeBufferPointer { rowOffsets in
                                    kernel.multiply(m: m, n: n, a: a.baseAddress!, aRow: aRow, aColumn: aColumn,
                                                    b: b.baseAddress!, rowOffsets: rowOffsets, c: &c, ldc: ldc,
                                                    accumulate: accumulate, streamsA: accumulate)
                                }
                            }
                        }
                        // The second call adds the product to the first's.
                        let product = (0..<m).flatMap { row in c[(row * ldc)..<(row * ldc + n)] }
                        let sum = expected.map { $0 * (accumulate ? 2 : 1) }
                        #expect(relativeError(product, sum) <= 1e-5,
                                "\(m)×\(n)×\(k) \(kernel.instructionSet) transposed \(transposedA) accumulate \(accumulate)")
                        #expect((0..<m).allSatisfy { row in c[(row * ldc + n)..<((row + 1) * ldc)].allSatisfy(\.isInfinite) },
                                "\(m)×\(n)×\(k) \(kernel.instructionSet) wrote past n")
                    }
                }
            }
        }
    }

    /// `C = A·Bᵀ` and `C += A·Bᵀ` (AVX-512 only): partial blocks of 6 × 4, sums past one 1024-float
    /// pass, a row length that ends mid-vector, and rows stored with exactly `k` floats.
    @Test func transposedMatchesAFloat64Product() {
        // An AVX2 kernel declines (the caller keeps its GEMM); the AVX-512 one runs where it can.
        var one: [Float] = [0]
        #expect(ProductKernel(instructionSet: .avx2).multiplyTransposed(
            m: 1, n: 1, k: 1, a: [1], lda: 1, b: [1], ldb: 1, c: &one, ldc: 1, accumulate: false) == nil)
        #expect(one == [0])
        guard DirectConvolution.InstructionSet.avx512.isSupported else { return }
        let kernel = ProductKernel(instructionSet: .avx512)
        var generator = SeededGenerator(seed: 92)
        for (m, n, k) in [(1, 1, 1), (7, 5, 17), (6, 4, 1024), (13, 9, 1030), (64, 64, 2352)] {
            let a = (0..<m * k).map { _ in Float.random(in: -1...1, using: &generator) }
            let b = (0..<n * k).map { _ in Float.random(in: -1...1, using: &generator) }
            var product = [Double](repeating: 0, count: m * n)
            for row in 0..<m {
                for column in 0..<n {
                    for i in 0..<k { product[row * n + column] += Double(a[row * k + i]) * Double(b[column * k + i]) }
                }
            }
            for accumulate in [false, true] {
                var c = [Float](repeating: 0.5, count: m * n)
                let ran: Void? = kernel.multiplyTransposed(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c, ldc: n,
                                                           accumulate: accumulate)
                #expect(ran != nil)
                let expected = product.map { accumulate ? $0 + 0.5 : $0 }
                #expect(relativeError(c, expected) <= 1e-5, "\(m)×\(n)×\(k) accumulate \(accumulate)")
            }
        }
    }
}
