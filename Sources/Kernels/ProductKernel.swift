import KernelsSIMD

/// `C = A·B` by Kernels' own micro-kernel (the direct convolution's block: 6 rows
/// × 64 columns of `C` in 24 AVX-512 registers), for Winograd's per-position products, whose
/// `B` (the transformed tiles) is already laid out row by row, and for products whose operands
/// need not be copied into a matrix first: the strided passes over a phase-split image
/// (``ImplicitConvolution``) and the 1×1 passes over each image in place
/// (``PointwiseProduct``, ``PointwiseWeightGradient``). With `accumulate` it adds to `C`, which those weight gradients
/// use to sum a batch (``ImageProductSum``).
///
/// Why not OpenBLAS there: with an inner dimension of 64–512 channels and `A` (the transformed
/// weights) shared by every call, OpenBLAS spent about a fifth of each product copying both
/// operands into its packed panels and zeroing `C` for beta = 0. This kernel reads both in place
/// (either layout of `A`, `B` through per-row offsets), walks 128 rows of `B` at a time so that
/// piece stays in L1, and prefetches the next piece, since its many row streams defeat the
/// hardware prefetcher. Only the last vector of a row is masked: it reads nothing past `n`.
///
/// Measured and not used (medians on the AVX-512 Xeon against OpenBLAS, `prof` runs of 1 s):
/// - on AVX2 (6 rows × 16 columns in 12 registers) against OpenBLAS's Haswell kernels:
///   resnet-c2 Winograd forward 11.5 → 13.9 ms, resnet-c4 10.1 → 13.0 ms;
/// - for the im2col GEMMs: forward mixed (8×64×56×56 → 128 3×3 s2 4.1 → 3.9 ms, but
///   8×256×56×56 → 64 1×1 4.3 → 5.1 ms: that image's rows were off the cache line, see
///   ``PointwiseProduct``, which now runs it at 3.0 ms), backward-data slower (3.9 → 4.8 ms), and the
///   weight gradient as `dWᵀ = columns · dYᵀ` slower too (4.3 → 4.4, 4.1 → 4.8 ms);
/// - copying each 128-row piece of `B` into an aligned panel first, so no load splits a cache
///   line: slower (resnet-c3s2 strided forward 3.75 → 3.80 ms, resnet-c2 Winograd forward
///   4.40 → 4.62 ms, minima of 5 alternating runs).
struct ProductKernel: Sendable {
    let instructionSet: DirectConvolution.InstructionSet

    /// The kernel Kernels uses on this CPU, or nil (no AVX-512: OpenBLAS does these GEMMs).
    static let preferred: ProductKernel? =
        DirectConvolution.InstructionSet.avx512.isSupported ? ProductKernel(instructionSet: .avx512) : nil

    /// `C = A·B` (`C += A·B` with `accumulate`) for `C` `m × n` with rows `ldc` apart, row `i` of `B` (`k × n`, `k` being
    /// `rowOffsets.count`) at `b + rowOffsets[i]`, and element (r, i) of `A` (`m × k`) at
    /// `a[r·aRow + i·aColumn]`. The offsets are the caller's, made once and shared: `i · ldb`
    /// for a plain matrix (Winograd's planes), or each tap's start, rows that overlap, for the
    /// windows of a convolution (``ImplicitConvolution``). With `bias` (`m` floats) row `r` of `C`
    /// also gets `bias[r]`, added as the last pass stores it. `streamsA`: `A` (row-major) is
    /// read from memory, not cache, so the kernel prefetches its rows too.
    func multiply(m: Int, n: Int, a: UnsafePointer<Float>, aRow: Int, aColumn: Int,
                  b: UnsafePointer<Float>, rowOffsets: UnsafeBufferPointer<Int>, c: UnsafeMutablePointer<Float>, ldc: Int,
                  bias: UnsafePointer<Float>? = nil, accumulate: Bool = false, streamsA: Bool = false) {
        let function = instructionSet == .avx512 ? kernels_product_avx512 : kernels_product_avx2
        function(b, rowOffsets.baseAddress, rowOffsets.count, a, aRow, aColumn, m, c, ldc, n, bias, accumulate, streamsA)
    }

    /// `C = A·Bᵀ`, or `C += A·Bᵀ` with `accumulate`, for `A` (`m × k`) and `B` (`n × k`) with
    /// their rows `lda` and `ldb` apart and `k` long and contiguous: Winograd's weight-gradient
    /// products. Summed in vectors along `k`, each reduced once per 1024 floats; AVX-512 only
    /// (nil from an AVX2 kernel: the caller keeps its GEMM).
    func multiplyTransposed(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) -> Void? {
        guard instructionSet == .avx512 else { return nil }
        kernels_product_transposed_avx512(a, lda, b, ldb, m, n, k, c, ldc, accumulate)
        return ()
    }
}
