/// The weight gradient of layers with a kernel row of 64+ floats on AVX-512 CPUs (the
/// direct kernel's layers, such as 16 → 16 channels 7×7 or 32 → 32 channels 5×5, and the
/// im2col layers Winograd does not take, such as 96 → 256 channels 5×5), as ``ProductKernel``
/// products over a channel-last copy of each image; on AVX2-only CPUs, of 7×7 and larger
/// stride-1 layers (see ``product(for:)``).
///
/// With the image copied zero-padded as `[y][x][c]`, the inputs output `(oh, ow)` meets through
/// kernel row `kh` (every `kw`, every channel) are `KW·C` contiguous floats at
/// `((s·oh + kh)·paddedWidth + s·ow)·C` at stride `s`. So for each `kh`, `dW[f][kh][·][·] = Σ_p dY[f][p] · B_kh[p][·]`
/// is one product: `A` the output gradient read in place (`F × P`), `B` those overlapping rows,
/// `KW·C` columns wide (with a dilation across, a kernel row's taps are not adjacent: each tap
/// is a product of its own, `C` columns wide). The direct kernel's weight gradient sums one tap (or one vector of
/// filters) at a time, two loads per multiply-add; here each input vector meets 6 filters.
/// Minima of 5 alternating `prof` runs, 8×16×64×64 → 16 7×7: one thread 7.72 → 5.26 ms
/// (PyTorch about 5.5), two 4.81 → 3.60; 8×32×64×64 → 32 5×5: one thread 16.4 → 11.0 ms,
/// two 7.55 → 7.32.
///
/// Against im2col + OpenBLAS, which writes a `C·KH·KW × P` column matrix per image (7 MB for
/// 96 channels 5×5 over 27×27) and packs it again before its GEMM, the copy here is the image's
/// own size (minima of 3 alternating runs, two threads unless said): 8×96×27×27 → 256 5×5
/// 27.8 → 23.4 ms (one thread 54.0 → 45.5; PyTorch 43.4), 8×64×28×28 → 64 7×7 14.8 → 8.2,
/// 8×64×32×32 → 128 5×5 15.3 → 11.2, 8×48×27×27 → 128 5×5 8.4 → 5.7, 8×64×32×32 → 8 3×3
/// 2.05 → 0.40, one image 1×64×56×56 → 64 7×7 7.8 → 5.2 and 1×96×27×27 → 256 5×5 4.9 → 4.7.
struct ChannelLastWeightGradient {
    let geometry: ConvGeometry
    let filters: Int
    let product: ProductKernel

    /// Whether this layer's weight gradient runs here: a kernel larger than 1×1 (a pointwise
    /// layer's image already is its column matrix), products at least 64 floats wide
    /// (``pieceColumns(_:)``), so each is at least one full block of the kernel, and a padded
    /// copy of at most ``CheckedArithmetic/maximumImageCopyFloats`` (padding far beyond the image
    /// could make it huge, or overflow). A dilated layer, whose products are one tap's channels
    /// each, also needs its partial sum (`F·C·KH·KW`) within 1 MiB: minima of 4 alternating runs,
    /// 8×128×28×28 → 128 3×3 dilation 2 13.0 → 10.2 ms, but 8×256×28×28 → 256 (2.4 MB of partial
    /// sum, updated by each of 9 products per image) 37.0 → 45.5 against im2col + OpenBLAS. A
    /// strided layer (its rows of `B` every `stride`-th pixel) needs its partial sum within
    /// ``ChannelLastConvolution/largeWeightFloats``: against the products over a phase-split copy
    /// or im2col, call-by-call pairs' median ratio 0.95 on resnet-c3s2, 0.94 on 8×128×28×28 → 256,
    /// 0.85 on 16×64×32×32 → 128, 0.81 on 8×64×56×56 → 128 5×5, 0.82 on 16×32×32×32 → 64, but
    /// 1.15–1.36 on 8×256×14×14 (and 28×28) → 512 (4.7 MB of partial sum per thread). (Until
    /// Nov 27 2026 the engine kept strided layers that the phase-split products also take on
    /// those: see ``ConvolutionEngine/channelLastWeightGradient``.)
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        g.kernel.height * g.kernel.width > 1 && pieceColumns(g) >= 64
            && (g.dilation == 1 || CheckedArithmetic.product(filters, g.columnRows, isAtMost: 1 << 18))
            && (g.stride == 1 || CheckedArithmetic.product(filters, g.columnRows, isAtMost: ChannelLastConvolution.largeWeightFloats))
            && g.channelLastCopyFits
    }

    /// The columns of one product: a whole kernel row (`KW·C`) where its taps are adjacent, one
    /// tap's channels (`C`) where a dilation spaces them apart.
    static func pieceColumns(_ g: ConvGeometry) -> Int {
        g.dilation.width == 1 ? g.kernel.width * g.channels : g.channels
    }

    /// The product kernel a layer's weight gradient runs here on, or nil: AVX-512's wherever
    /// there is one; on AVX2-only CPUs the AVX2 build (6 filters × 16 columns), only for
    /// undilated stride-1 layers with 7×7 or larger kernels, where im2col copies the image 49+
    /// times and OpenBLAS packs that column matrix again. On a 2-core AMD EPYC (Zen 3),
    /// call-by-call pairs' median ratios against im2col + OpenBLAS (or the direct kernel where
    /// it runs): 8×64×28×28 → 64 7×7 0.736, 8×16×64×64 → 16 7×7 0.935 (direct); but 5×5 layers
    /// gained nothing (8×32×56×56 → 96 0.963, 8×64×32×32 → 128 1.018, 8×96×27×27 → 256 1.031,
    /// 8×32×64×64 → 32 1.013 against direct), strided ones lost (resnet-c3s2 1.37, 8×128×28×28 →
    /// 256 1.24) and 8×256×28×28 → 256 dilation 2 was even (1.003).
    static func product(for g: ConvGeometry) -> ProductKernel? {
        if let preferred = ProductKernel.preferred { return preferred }
        guard DirectConvolution.isSupported, g.stride == 1, g.dilation == 1,
              g.kernel.height * g.kernel.width >= 49 else { return nil }
        return ProductKernel(instructionSet: .avx2)
    }

    private var paddedWidth: Int { geometry.channelLastPaddedWidth }
    /// Floats of one image's channel-last copy.
    private var copyCount: Int { geometry.channelLastCopyFloats }
    private var imageWorkers: Int { geometry.imageWorkers(filters: filters) }
    /// One thread's slice: a copy, then a partial sum `[F][KH][KW][C]`.
    private var sliceCount: Int { copyCount + filters * geometry.columnRows }
    /// Floats of workspace for ``run(input:outputGradient:weightGradient:workspace:)``.
    var workspaceCount: Int { max(1, imageWorkers) * sliceCount }

    /// `weightGradient = Σₙ dY[n] ⋆ input[n]`, overwriting it.
    func run(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
             weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (channels, paddedWidth, copyCount) = (g.channels, paddedWidth, copyCount)
        let pieceColumns = Self.pieceColumns(g)
        let pieces = g.columnRows / pieceColumns
        let taps = g.kernel.height * g.kernel.width
        let positions = g.outputPlaneSize
        let sum = ImageProductSum(batch: g.batch, imageWorkers: imageWorkers, imageWork: g.imageWork(filters: filters),
                                  rows: filters, rowLength: g.columnRows, sliceCount: sliceCount, partialOffset: copyCount)
        // Row p of each product: where output p's window starts in the copy (kernel row 0).
        let rowOffsets = (0..<positions).map { position in
            let (row, column) = position.quotientAndRemainder(dividingBy: g.outputWidth)
            return (row * g.stride.height * paddedWidth + column * g.stride.width) * channels
        }
        let partial = rowOffsets.withUnsafeBufferPointer { rowOffsets in
            // The copy's padding is never written: zeroed once per call.
            sum.run(workspace: workspace, zeroing: copyCount) { image, slice in
                g.copyChannelLast(input + image * g.imageSize, into: slice)
            } multiply: { image, slice, range, accumulate in
                for piece in 0..<pieces {
                    let (kernelRow, kernelColumn) = g.dilation.width == 1 ? (piece, 0) : piece.quotientAndRemainder(dividingBy: g.kernel.width)
                    let start = (kernelRow * g.dilation.height * paddedWidth + kernelColumn * g.dilation.width) * channels
                    product.multiply(m: range.count, n: pieceColumns,
                                     a: outputGradient + (image * filters + range.lowerBound) * positions, aRow: positions, aColumn: 1,
                                     b: slice + start, rowOffsets: rowOffsets,
                                     c: slice + copyCount + range.lowerBound * g.columnRows + piece * pieceColumns,
                                     ldc: g.columnRows, accumulate: accumulate)
                }
            }
        }
        // [f][kh][kw][c] → [f][c][kh][kw].
        Parallel.forEach(filters, workPerItem: g.columnRows) { range in
            for filter in range {
                VectorOperations.transpose(rows: taps, columns: channels, from: partial + filter * g.columnRows, sourceStride: channels,
                                           to: weightGradient + filter * g.columnRows, destinationStride: taps)
            }
        }
    }
}
