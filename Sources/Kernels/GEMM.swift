import CBLAS

/// Single-precision matrix multiply, row-major: `C = alpha · op(A) · op(B) + beta · C`, where
/// `op(X)` is `X` or `Xᵀ`, `op(A)` is `m × k`, `op(B)` is `k × n` and `C` is `m × n`.
///
/// This file is the only one that calls OpenBLAS. The pure-Swift versions in
/// `GEMM+Swift.swift` have exactly the same signature, so tests and benchmarks swap one
/// for another through ``GEMMBackend``.
///
/// ```swift
/// GEMM.openBLAS(transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 1,
///               a: a, lda: 2, b: b, ldb: 2, beta: 0, c: c, ldc: 2)
/// ```
/// These raw-pointer entry points do not validate: the caller guarantees the buffers hold
/// the described matrices, that every size fits in `Int32` and that leading dimensions are
/// at least the row lengths. The `Tensor` API validates all of that before it gets here.
///
/// - Complexity: O(m · n · k).
public enum GEMM {
    public static func openBLAS(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            // BLAS rejects lda = 0, which a k = 0 product implies; the result is just beta · C.
            scale(c, rows: m, columns: n, ldc: ldc, by: beta)
            return
        }
        _ = OpenBLASCore.selection
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// The number of threads OpenBLAS uses for each call (its pool is process-wide).
    ///
    /// Defaults to `OPENBLAS_NUM_THREADS` or the core count. Setting it affects every caller in
    /// the process; benchmarks use it for single-thread figures.
    public static var openBLASThreadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(clamping: max(1, newValue))) }
    }

    /// Runs `body` with OpenBLAS on one thread, so Kernels can run several independent GEMMs
    /// on its own threads at once without OpenBLAS's pool oversubscribing the cores (and
    /// without OpenBLAS's idle workers spinning against Kernels' threads).
    ///
    /// OpenBLAS's thread count is process-wide, so nested and concurrent scopes share one
    /// count: the first to enter saves the current setting, the last to leave restores it.
    static func withSingleThreadedOpenBLAS<Result>(_ body: () throws -> Result) rethrows -> Result {
        singleThreadedScopes.withLock { scopes in
            if scopes.active == 0 {
                scopes.savedThreadCount = openblas_get_num_threads()
                openblas_set_num_threads(1)
            }
            scopes.active += 1
        }
        defer {
            singleThreadedScopes.withLock { scopes in
                scopes.active -= 1
                if scopes.active == 0 { openblas_set_num_threads(scopes.savedThreadCount) }
            }
        }
        return try body()
    }

    private static let singleThreadedScopes = Locked<(active: Int, savedThreadCount: Int32)>((0, 1))

    /// OpenBLAS's thread count while no single-threaded scope is open, or nil while one is: what
    /// a test of the scopes can compare without racing other calls in flight.
    static var openBLASThreadCountOutsideScopes: Int? {
        singleThreadedScopes.withLock { $0.active == 0 ? Int(openblas_get_num_threads()) : nil }
    }

    /// The OpenBLAS core type whose kernels run Kernels' GEMMs (an `OPENBLAS_CORETYPE` name such
    /// as "Haswell" or "SkylakeX"): the one OpenBLAS detected, or, when it fell back to a core
    /// without AVX2 on a CPU it does not know, the fastest one this CPU supports
    /// (see ``openBLASDetectedCoreType``).
    public static var openBLASCoreType: String { OpenBLASCore.selection.running }

    /// The core type OpenBLAS chose for this CPU by itself, when it was loaded.
    public static var openBLASDetectedCoreType: String { OpenBLASCore.selection.detected }

    /// OpenBLAS's build description: version, target core, thread model.
    public static var openBLASConfiguration: String {
        _ = OpenBLASCore.selection
        guard let configuration = openblas_get_config() else { return "unknown" }
        return String(cString: configuration)
    }

    /// `C = beta · C` over an `m × n` block (beta = 0 clears, even over NaN, as BLAS does).
    static func scale(_ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ldc: Int, by beta: Float) {
        for row in 0..<rows {
            let line = c + row * ldc
            if beta == 0 {
                line.update(repeating: 0, count: columns)
            } else if beta != 1 {
                for column in 0..<columns { line[column] *= beta }
            }
        }
    }
}

/// Which matrix multiply an operation runs on.
///
/// `openBLAS` is the default everywhere; the pure-Swift ones serve as a test oracle and as a
/// fallback, and let benchmarks show what OpenBLAS buys.
public enum GEMMBackend: String, Sendable, Hashable, CaseIterable {
    case openBLAS
    /// The textbook triple loop: slow, obviously correct.
    case swiftNaive
    /// Cache-blocked, packed and SIMD-vectorized pure Swift.
    case swiftBlocked

    /// Runs `C = alpha · op(A) · op(B) + beta · C` on this backend (see ``GEMM``).
    @inline(__always)
    public func multiply(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let function = switch self {
        case .openBLAS: GEMM.openBLAS
        case .swiftNaive: GEMM.swiftNaive
        case .swiftBlocked: GEMM.swiftBlocked
        }
        function(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
}
