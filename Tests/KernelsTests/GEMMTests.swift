import Testing
@testable import Kernels

/// One `C = alpha · op(A) · op(B) + beta · C` problem with padded leading dimensions.
struct GEMMCase: Sendable, CustomTestStringConvertible {
    let m: Int, n: Int, k: Int
    let transposeA: Bool, transposeB: Bool
    let alpha: Float, beta: Float

    // Padding on every leading dimension, so a kernel that confuses a row length with its
    // stride, reads the padding or writes past a row shows up.
    var lda: Int { (transposeA ? m : k) + 3 }
    var ldb: Int { (transposeB ? k : n) + 5 }
    var ldc: Int { n + 2 }
    var aRows: Int { transposeA ? k : m }
    var bRows: Int { transposeB ? n : k }

    var testDescription: String {
        "\(m)×\(n)×\(k) \(transposeA ? "Aᵀ" : "A")·\(transposeB ? "Bᵀ" : "B") α=\(alpha) β=\(beta)"
    }

    static let scalarPairs: [(alpha: Float, beta: Float)] = [(1, 0), (1, 1), (0.5, -2), (-2, 0.5), (0, 0.5), (0, 0)]

    /// Odd sizes around the tile (6 × 8 or 6 × 16) and block boundaries, every transpose and
    /// every (alpha, beta) pair.
    static let small: [GEMMCase] = {
        let shapes = [(1, 1, 1), (3, 7, 17), (17, 3, 7), (7, 17, 3), (65, 130, 17), (130, 65, 66),
                      (1, 130, 65), (130, 1, 7), (13, 47, 300)]
        return shapes.flatMap { shape in
            transposes.flatMap { transposeA, transposeB in
                scalarPairs.map { alpha, beta in
                    GEMMCase(m: shape.0, n: shape.1, k: shape.2, transposeA: transposeA, transposeB: transposeB,
                             alpha: alpha, beta: beta)
                }
            }
        }
    }()

    /// Sizes spanning several depth, row and column blocks, and large enough to run threaded.
    static let large: [GEMMCase] = {
        let shapes = [(300, 257, 513), (70, 600, 40), (3, 4500, 9)]
        return shapes.flatMap { shape in
            // The biggest shape takes seconds per case in a debug build: two transposes suffice.
            let chosen = shape.0 == 300 ? [transposes[0], transposes[3]] : transposes
            return chosen.enumerated().map { index, transpose in
                let scalars = scalarPairs[index % 3]
                return GEMMCase(m: shape.0, n: shape.1, k: shape.2, transposeA: transpose.0, transposeB: transpose.1,
                                alpha: scalars.alpha, beta: scalars.beta)
            }
        }
    }()

    static let transposes = [(false, false), (true, false), (false, true), (true, true)]
}

@Suite("GEMM")
struct GEMMTests {
    static let paddingSentinel: Float = 12345

    @Test(arguments: GEMMBackend.allCases, GEMMCase.small + GEMMCase.large)
    func matchesDoubleReference(backend: GEMMBackend, problem: GEMMCase) {
        var generator = SeededGenerator(seed: UInt64(problem.m * 1_000_003 + problem.n * 1009 + problem.k))
        // NaN in the operands' padding: reading it would poison the result.
        let a = randomMatrix(rows: problem.aRows, columns: problem.transposeA ? problem.m : problem.k,
                             leadingDimension: problem.lda, padding: .nan, using: &generator)
        let b = randomMatrix(rows: problem.bRows, columns: problem.transposeB ? problem.k : problem.n,
                             leadingDimension: problem.ldb, padding: .nan, using: &generator)
        // beta = 0 must overwrite C, so start from NaN there to prove it is never read.
        var c = randomMatrix(rows: problem.m, columns: problem.n, leadingDimension: problem.ldc,
                             padding: Self.paddingSentinel, using: &generator)
        if problem.beta == 0 {
            for row in 0..<problem.m { for column in 0..<problem.n { c[row * problem.ldc + column] = .nan } }
        }
        let expected = reference(problem, a: a, b: b, c: c)

        backend.multiply(transposeA: problem.transposeA, transposeB: problem.transposeB,
                         m: problem.m, n: problem.n, k: problem.k, alpha: problem.alpha,
                         a: a, lda: problem.lda, b: b, ldb: problem.ldb, beta: problem.beta, c: &c, ldc: problem.ldc)

        let block = (0..<problem.m).flatMap { row in c[(row * problem.ldc)..<(row * problem.ldc + problem.n)] }
        let error = relativeError(block, expected)
        #expect(error <= 1e-5 * max(1, Double(problem.k).squareRoot()), "relative error \(error)")
        #expect(!block.contains { $0.isNaN })
        #expect(paddingIsUntouched(c, rows: problem.m, columns: problem.n, ldc: problem.ldc))
    }

    /// An empty inner dimension leaves `beta · C`, with beta = 0 clearing NaN.
    @Test(arguments: GEMMBackend.allCases, [Float(0), 0.5, 1])
    func zeroDepthScalesC(backend: GEMMBackend, beta: Float) {
        let (m, n, ldc) = (5, 9, 11)
        var generator = SeededGenerator(seed: 7)
        var c = randomMatrix(rows: m, columns: n, leadingDimension: ldc, padding: Self.paddingSentinel, using: &generator)
        if beta == 0 { for row in 0..<m { for column in 0..<n { c[row * ldc + column] = .nan } } }
        let before = c
        let unused: [Float] = [.nan]
        backend.multiply(transposeA: false, transposeB: false, m: m, n: n, k: 0, alpha: 1,
                         a: unused, lda: 1, b: unused, ldb: n, beta: beta, c: &c, ldc: ldc)
        for row in 0..<m {
            for column in 0..<n {
                let index = row * ldc + column
                #expect(c[index] == (beta == 0 ? 0 : beta * before[index]))
            }
        }
        #expect(paddingIsUntouched(c, rows: m, columns: n, ldc: ldc))
    }

    /// m = 0 or n = 0 is a no-op, not a crash or a stray write.
    @Test(arguments: GEMMBackend.allCases)
    func emptyOutputWritesNothing(backend: GEMMBackend) {
        var c: [Float] = [Self.paddingSentinel, Self.paddingSentinel]
        let operand: [Float] = [1, 2, 3, 4]
        backend.multiply(transposeA: false, transposeB: false, m: 0, n: 2, k: 2, alpha: 1,
                         a: operand, lda: 2, b: operand, ldb: 2, beta: 0, c: &c, ldc: 2)
        backend.multiply(transposeA: false, transposeB: false, m: 1, n: 0, k: 2, alpha: 1,
                         a: operand, lda: 2, b: operand, ldb: 2, beta: 0, c: &c, ldc: 2)
        #expect(c == [Self.paddingSentinel, Self.paddingSentinel])
    }

    /// A hand-checkable product: [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]].
    @Test(arguments: GEMMBackend.allCases)
    func workedExample(backend: GEMMBackend) {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: .nan, count: 4)
        backend.multiply(transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 1,
                         a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2)
        #expect(c == [19, 22, 43, 50])
    }

    // MARK: Helpers

    /// A `rows × leadingDimension` buffer: uniform -1...1 in the first `columns` of each row,
    /// `padding` after them.
    func randomMatrix(rows: Int, columns: Int, leadingDimension: Int, padding: Float,
                      using generator: inout SeededGenerator) -> [Float] {
        var storage = [Float](repeating: padding, count: max(1, rows * leadingDimension))
        for row in 0..<rows {
            for column in 0..<columns {
                storage[row * leadingDimension + column] = Float.random(in: -1...1, using: &generator)
            }
        }
        return storage
    }

    /// `alpha · op(A) · op(B) + beta · C` in Double, row-major `m × n`, no padding.
    func reference(_ problem: GEMMCase, a: [Float], b: [Float], c: [Float]) -> [Double] {
        var result = [Double](repeating: 0, count: problem.m * problem.n)
        for row in 0..<problem.m {
            for column in 0..<problem.n {
                var dot = 0.0
                for inner in 0..<problem.k {
                    let left = problem.transposeA ? a[inner * problem.lda + row] : a[row * problem.lda + inner]
                    let right = problem.transposeB ? b[column * problem.ldb + inner] : b[inner * problem.ldb + column]
                    dot += Double(left) * Double(right)
                }
                let previous = problem.beta == 0 ? 0 : Double(problem.beta) * Double(c[row * problem.ldc + column])
                result[row * problem.n + column] = Double(problem.alpha) * dot + previous
            }
        }
        return result
    }

    func paddingIsUntouched(_ c: [Float], rows: Int, columns: Int, ldc: Int) -> Bool {
        (0..<rows).allSatisfy { row in
            c[(row * ldc + columns)..<(row * ldc + ldc)].allSatisfy { $0 == Self.paddingSentinel }
        }
    }
}
