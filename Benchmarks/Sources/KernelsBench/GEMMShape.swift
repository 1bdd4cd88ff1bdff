import Kernels

/// The sizes and transposes of one row-major `C = op(A) · op(B)`, `op(A)` being `m × k`.
struct GEMMShape: Sendable, Hashable, CustomStringConvertible {
    var m: Int
    var n: Int
    var k: Int
    var transposeA = false
    var transposeB = false

    /// `2·m·n·k`: a multiply-add counts as two operations.
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// `m·n·k`, which decides whether the triple loop is affordable.
    var multiplyAdds: Int { m * n * k }

    var description: String {
        let transposes = (transposeA ? "ᵀ" : "") + (transposeB ? " Bᵀ" : "")
        return "\(m)×\(n)×\(k)" + (transposes.isEmpty ? "" : " (A\(transposes))")
    }
}

/// Random `A`, `B` and a `C` for one GEMM shape, owned for the duration of a benchmark.
final class GEMMOperands {
    let shape: GEMMShape
    /// 1 where the caller accumulates into `C` (the weight gradient over images), else 0.
    let beta: Float
    private let a: FloatBuffer
    private let b: FloatBuffer
    private let c: FloatBuffer

    init(_ shape: GEMMShape, beta: Float = 0) {
        self.shape = shape
        self.beta = beta
        a = FloatBuffer(randomCount: shape.m * shape.k)
        b = FloatBuffer(randomCount: shape.k * shape.n)
        c = FloatBuffer(randomCount: shape.m * shape.n)
    }

    /// One `C = op(A) · op(B) + beta · C` on `backend`, with the tightest leading dimensions.
    func multiply(on backend: GEMMBackend) {
        let s = shape
        backend.multiply(transposeA: s.transposeA, transposeB: s.transposeB, m: s.m, n: s.n, k: s.k,
                         alpha: 1, a: a.pointer, lda: s.transposeA ? s.m : s.k,
                         b: b.pointer, ldb: s.transposeB ? s.k : s.n,
                         beta: beta, c: c.pointer, ldc: s.n)
        Sink.consume(c.pointer[0])
    }
}
