import KernelsSIMD

/// Winograd F(2×2, 3×3) convolution for 3×3, stride-1, undilated layers.
///
/// Each 2×2 output tile is computed from a 4×4 input tile with 16 multiplies per channel pair
/// instead of 36, so the GEMM work drops 2.25× (Lavin & Gray, "Fast Algorithms for
/// Convolutional Neural Networks", 2015):
///
///     Y = Aᵀ [ Σ_c (G g Gᵀ) ⊙ (Bᵀ d B) ] A
///
/// The element-wise products summed over channels are 16 independent GEMMs, one per tile
/// position ξ: `M_ξ[o, t] = U_ξ[o, i] · V_ξ[i, t]` with `U = G g Gᵀ` (weights, `[16][O][I]`)
/// and `V = Bᵀ d B` (input tiles, `[16][I][T]`). The transforms use only additions and halvings,
/// so F(2×2, 3×3) loses little accuracy against direct convolution (measured in the tests).
///
/// The same routine serves the backward-data pass, which is a 3×3 stride-1 convolution of the
/// output gradient with the kernel rotated by 180° and its channel axes swapped, padded by
/// `2 − padding`.
///
/// Why not F(4×4, 3×3) (4× fewer multiplies): it was built (correct to 2e-5) and measured slower
/// forward on resnet-c2 and resnet-c4 (11.4 → 16.3 ms and 7.9 → 10.4 ms at batch 8): its 36
/// transformed planes make the transforms cost more than the GEMM work they save at these sizes.
///
/// Tried and not kept for wide layers on few tiles (512 → 512 channels on 7×7, whose `U` is
/// 16 MiB): transforming `U` 24 (16, 48) output channels at a time straight into their 16
/// products while in L2, never writing all of it: forward at batch 1 1.87 → 1.5 ms, but
/// batch 4 no faster and backward-data slower at every batch (2.1 → 2.4 ms at batch 1: the
/// rotated kernels' blocks are gathered one input channel at a time); and the products cut
/// into blocks of 48 or 96 output channels, so each block of `U` is read from memory once for
/// both 64-tile column blocks: no change (minima of 3 alternating runs).
///
/// Layout choice: tiles of one tile-row are contiguous in `V` and `M`, so every transform is a
/// loop over `tx` with contiguous stores: 16 tiles a step in Kernels' AVX-512 kernels, whose
/// masked loads stand in for the padding, else 4 in Swift through zero-padded row copies (no
/// per-element bounds checks either way; see ``usesVectorTileTransforms``).
struct WinogradF2x3 {
    /// The 3×3 kernels a run convolves with: a convolution weight `[O, I, 3, 3]` as it is, or
    /// (backward data) a weight `[F, C, 3, 3]` seen as `[C, F, 3, 3]` rotated by 180°.
    ///
    /// The rotated kernel is never copied: its transform is stored in the weight's own channel
    /// order (`U_ξ` is `[F][C]`, i.e. `[I][O]`) and the per-position GEMMs read it transposed.
    struct Kernel {
        let weight: UnsafePointer<Float>
        let isRotated: Bool

        /// A convolution weight `[O, I, 3, 3]` as it is.
        static func forward(_ weight: UnsafePointer<Float>) -> Kernel { Kernel(weight: weight, isRotated: false) }

        /// A convolution weight `[F, C, 3, 3]` seen as `[C, F, 3, 3]` rotated by 180°: the kernel
        /// of the backward-data pass.
        static func backwardData(_ weight: UnsafePointer<Float>) -> Kernel { Kernel(weight: weight, isRotated: true) }
    }

    /// Input side: `batch × inputChannels × height × width`.
    let batch: Int
    let inputChannels: Int
    let height: Int
    let width: Int
    let outputChannels: Int
    let padding: Size2D
    let backend: GEMMBackend
    /// The micro-kernel that multiplies the forward and backward-data passes' per-position
    /// matrices, or nil for `backend`'s GEMM (see ``runSpans``).
    var product: ProductKernel?

    let outputHeight: Int
    let outputWidth: Int
    /// The product kernel for a layer's forward and backward-data passes on this CPU: the
    /// AVX-512 one wherever it runs; on AVX2-only CPUs the AVX2 one (6 rows × 16 columns) for
    /// layers whose `U` is at most ``maximumAVX2ProductWeightFloats``, else none (OpenBLAS).
    static func product(inputChannels: Int, outputChannels: Int) -> ProductKernel? {
        if let preferred = ProductKernel.preferred { return preferred }
        guard kernels_simd_has_avx2_fma(), 16 * inputChannels * outputChannels <= maximumAVX2ProductWeightFloats else { return nil }
        return ProductKernel(instructionSet: .avx2)
    }

    /// Largest `U` (all 16 planes) the AVX2 product kernel multiplies: 576 KiB, 96 → 96 or
    /// 64 → 144 channels. Call-by-call pairs on a 2-core AMD EPYC (Zen 3), OpenBLAS's products ÷
    /// the kernel's, forward / backward-data: 8×64×56×56 → 64 1.21 / 1.21, 64×64×32×32 → 64
    /// 1.13 / 1.12, 1×64×56×56 → 64 1.09 / 1.06, 8×64×32×32 → 8 1.28 (forward; its backward-data
    /// pass is the direct kernel's), 8×32×56×56 → 32 1.07 / 1.09, 8×64×28×28 → 128 1.14 / 1.03,
    /// 16×96×16×16 → 96 1.15 / 1.11; but 8×128×28×28 → 128 (1 MiB) 1.05 / 0.96, and the groups of
    /// wider layers lost more (8×256×14×14 → 256 0.89 / 0.75).
    static let maximumAVX2ProductWeightFloats = 16 * 96 * 96

    /// Tiles per image down: ceil(outputHeight / 2).
    let tilesHigh: Int
    /// Tiles stored per tile-row: ceil(outputWidth / 2) rounded up to a multiple of 4, so every
    /// transform runs four tiles per SIMD step with no scalar tail. The extra tiles read zero
    /// padding; their outputs are never stored and their gradients are zero.
    let tilesWide: Int
    let tilesPerImage: Int
    /// Images transformed and multiplied together, so each GEMM has enough columns to run at
    /// speed while the workspace stays bounded whatever the batch.
    let imagesPerGroup: Int
    /// Length of one zero-padded input row: room for every tile's 4 columns.
    let paddedRowLength: Int

    /// Floats added after each of the 16 transformed planes. Without it the planes are often a
    /// multiple of 4 KiB apart (64 channels × 2048 tiles is 512 KiB), and the transforms' 16
    /// parallel streams then fall into the same cache sets and evict each other.
    static let planePadding = 16

    /// Tiles per GEMM we aim for: below about this many columns OpenBLAS loses efficiency.
    static let targetTilesPerGroup = 2048
    /// Cap on `V` + `M` floats per group (24 MiB). Wide layers reach it long before 2048 tiles
    /// (resnet-c4, 256 → 256 channels on 14×14: 13 images, where 2048 tiles would be 37 images
    /// and 64 MiB), so their workspace stops growing at a batch of 13 instead of growing with
    /// every image up to 37. 16 MiB was measured too small: resnet-c2's groups fell from 3 to
    /// 2 images and its backward-data pass got slower.
    static let maximumGroupFloats = 6 << 20

    /// Images transformed together by a Winograd pass whose GEMMs take the tiles as columns (this
    /// one's, and ``LargeKernelWinograd``'s and ``StrideTwoWinograd``'s): enough for
    /// ``targetTilesPerGroup`` tiles, no more than ``maximumGroupFloats`` of `V` + `M`
    /// (`floatsPerImage` an image), at most `maximum`, at least 1.
    static func imagesPerGroup(batch: Int, tilesPerImage: Int, floatsPerImage: Int, maximum: Int = .max) -> Int {
        let wanted = max(1, (targetTilesPerGroup + tilesPerImage - 1) / max(1, tilesPerImage))
        let affordable = max(1, maximumGroupFloats / max(1, floatsPerImage))
        return max(1, min(batch, wanted, affordable, maximum))
    }

    init(batch: Int, inputChannels: Int, height: Int, width: Int, outputChannels: Int, padding: Size2D, backend: GEMMBackend) {
        self.batch = batch
        self.inputChannels = inputChannels
        self.height = height
        self.width = width
        self.outputChannels = outputChannels
        self.padding = padding
        self.backend = backend
        product = backend == .openBLAS ? Self.product(inputChannels: inputChannels, outputChannels: outputChannels) : nil
        outputHeight = height + 2 * padding.height - 2
        outputWidth = width + 2 * padding.width - 2
        tilesHigh = (outputHeight + 1) / 2
        tilesWide = ((outputWidth + 1) / 2 + 3) / 4 * 4
        tilesPerImage = tilesHigh * tilesWide
        paddedRowLength = 2 * tilesWide + 2
        let floatsPerImage = 16 * tilesPerImage * (inputChannels + outputChannels)
        imagesPerGroup = Self.imagesPerGroup(batch: batch, tilesPerImage: tilesPerImage, floatsPerImage: floatsPerImage)
    }

    /// Floats of workspace: `U`, and `V` and `M` for one group of images (the weight gradient,
    /// and the other passes without the product kernel), or for one span per core (the other
    /// passes with it).
    var workspaceCount: Int {
        let grouped = groupFloats(tiles: imagesPerGroup * tilesPerImage)
        let fused = product == nil || !isNarrow ? 0 : fusedSpanChunks * groupFloats(tiles: fusedSpanTiles)
        return weightPlaneStride * 16 + max(grouped, fused)
    }

    /// Floats of `V` and `M` for a group of `tiles` tiles.
    private func groupFloats(tiles: Int) -> Int {
        let stride = Self.tileStride(tiles)
        return 16 * (Self.planeStride(inputChannels, tiles: stride) + Self.planeStride(outputChannels, tiles: stride))
    }

    /// `V` + `M` floats a core's span aims at with the product kernel (1 MiB): both stay in its
    /// L2 cache between the transforms and the products.
    static let fusedSpanFloats = 1 << 18
    /// Fewest tiles a span aims at: below a 64-tile block the product kernel runs narrow.
    static let minimumFusedSpanTiles = 64

    /// The spans the product kernel's passes divide the batch into: each is transformed,
    /// multiplied and transformed back by one core while its `V` and `M` are in that core's
    /// cache, where a group of 2048 tiles (the OpenBLAS path's, whose GEMMs need the columns)
    /// went through memory three times. Whole images when an image is smaller than the aim,
    /// else bands of tile-rows of one image; small enough that every core gets a span.
    var fusedSpanShape: (images: Int, tileRows: Int) {
        let cores = Parallel.coreCount
        let aim = max(Self.minimumFusedSpanTiles, Self.fusedSpanFloats / (16 * (inputChannels + outputChannels)))
        if tilesPerImage < aim {
            let images = min(aim / tilesPerImage, batch, max(1, batch / cores))
            if images > 1 || batch >= cores { return (max(1, images), tilesHigh) }
        }
        let bandsForCores = batch >= cores ? 1 : (cores + batch - 1) / batch
        let rows = min(max(1, aim / tilesWide), (tilesHigh + bandsForCores - 1) / bandsForCores)
        return (1, max(1, rows))
    }

    /// Tiles of the largest span (see ``fusedSpanShape``).
    private var fusedSpanTiles: Int {
        let (images, rows) = fusedSpanShape
        return images * rows * tilesWide
    }

    /// The spans of the whole batch: (first image, span).
    private var fusedSpans: [(firstImage: Int, span: TileSpan)] {
        let (images, rows) = fusedSpanShape
        var spans: [(firstImage: Int, span: TileSpan)] = []
        for firstImage in stride(from: 0, to: batch, by: images) {
            for firstRow in stride(from: 0, to: tilesHigh, by: rows) {
                spans.append((firstImage, TileSpan(images: min(images, batch - firstImage),
                                                   tileRows: firstRow..<min(firstRow + rows, tilesHigh), acrossCores: false)))
            }
        }
        return spans
    }

    /// Cores the spans are split across (each with its own `V` and `M`), from the count of
    /// ``fusedSpans`` without building them.
    private var fusedSpanChunks: Int {
        let (images, rows) = fusedSpanShape
        let count = (batch + images - 1) / images * ((tilesHigh + rows - 1) / rows)
        return Parallel.chunkCount(count, workPerItem: Parallel.minimumParallelWork)
    }

    /// Distance between two channels' rows of `tiles` tiles in `V` and `M`: a multiple of 16
    /// floats, so every row starts on a cache line as the first does (the planes are 16-float
    /// multiples apart too). Rows off the line made each of the product kernel's 64-float loads
    /// straddle two lines, and its prefetch miss the fifth line of every row: resnet-c4's
    /// groups of 13 images are 728 tiles, every other row 8 floats off the line.
    static func tileStride(_ tiles: Int) -> Int { (tiles + 15) / 16 * 16 }

    /// Distance between two of the 16 planes of a `[16][channels][tiles]` buffer.
    static func planeStride(_ channels: Int, tiles: Int) -> Int { channels * tiles + planePadding }

    /// Distance between two of the 16 planes of `U` (`[16][O][I]`).
    var weightPlaneStride: Int { outputChannels * inputChannels + Self.planePadding }

    /// Fewest filters of a layer Winograd takes: 16, or 8 on CPUs without AVX-512 (there the alternative is im2col + a GEMM of only 8 rows, and the backward-data
    /// pass's col2im). On a 2-core AMD EPYC (Zen 3), call-by-call pairs' median ratios of Winograd
    /// to those: 8×64×32×32 → 8 forward 0.60, backward-data 0.54, weight gradient 0.50,
    /// forward+backward 0.51; 8×32×56×56 → 8 0.63, 0.51, 0.57. Not fewer: with 4 filters the
    /// backward-data pass (4 channels in) runs the direct kernel, 3.7× faster than Winograd there.
    /// Not fewer channels either: 8×8×32×32 → 64 took 1.15–1.8× as long by Winograd.
    static var minimumFilters: Int { ProductKernel.preferred == nil ? 8 : 16 }

    /// Whether Winograd is worth it (and valid) for a geometry: 3×3, stride 1, no dilation,
    /// padding ≤ 2 (so the backward pass's padding `2 − p` is not negative), and enough
    /// channels on both sides that the GEMMs, not the transforms, dominate: 16+ channels and
    /// ``minimumFilters`` filters.
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.dilation == 1
            && (0...2).contains(g.padding.height) && (0...2).contains(g.padding.width)
            && g.channels >= 16 && filters >= minimumFilters
            // Far below any size that fits in memory; keeps the workspace arithmetic overflow-free.
            && g.outputPlaneSize < 1 << 40 && g.channels + filters < 1 << 20
    }

    /// Runs the convolution: `output[n] = conv(input[n], g) (+ bias)`.
    ///
    /// The workspace carved into its three parts for one group of `tiles` tiles: the weight
    /// side (`U` or `dU`, `[16][O][I]`), the transformed input `V` (`[16][I][tiles]`) and the
    /// products `M` (`[16][O][tiles]`), with the plane strides of each.
    private struct GroupBuffers {
        let weights: UnsafeMutablePointer<Float>
        let input: UnsafeMutablePointer<Float>
        let products: UnsafeMutablePointer<Float>
        let tiles: Int
        /// Distance between two rows of `V` and `M` (``tileStride(_:)``).
        let stride: Int
        let inputPlane: Int
        let productPlane: Int
    }

    /// Calls `body(firstImage, images, buffers)` for consecutive groups of at most
    /// ``imagesPerGroup`` images, all through the same workspace.
    private func forEachGroup(workspace: UnsafeMutablePointer<Float>, _ body: (_ firstImage: Int, _ images: Int, GroupBuffers) -> Void) {
        let input = workspace + 16 * weightPlaneStride
        let products = input + 16 * Self.planeStride(inputChannels, tiles: Self.tileStride(imagesPerGroup * tilesPerImage))
        var firstImage = 0
        while firstImage < batch {
            let images = min(imagesPerGroup, batch - firstImage)
            let tiles = images * tilesPerImage
            let stride = Self.tileStride(tiles)
            body(firstImage, images, GroupBuffers(weights: workspace, input: input, products: products, tiles: tiles, stride: stride,
                                                  inputPlane: Self.planeStride(inputChannels, tiles: stride),
                                                  productPlane: Self.planeStride(outputChannels, tiles: stride)))
            firstImage += images
        }
    }

    /// Whether the GEMMs run on Kernels' threads with OpenBLAS single-threaded (see
    /// ``withKernelsThreading(_:)``); other backends keep their own threading.
    private var splitsGEMMs: Bool { backend == .openBLAS && Parallel.coreCount > 1 }

    /// Runs a whole pass with OpenBLAS single-threaded, every GEMM split across Kernels'
    /// threads instead. Measured faster than two-thread OpenBLAS calls: after any such call
    /// OpenBLAS's idle worker spins (sched_yield) for a while, against the transforms' threads
    /// — even a small multi-threaded call such as the kernel transform set off ~20% of a
    /// 64-channel layer's time in the scheduler.
    ///
    /// OpenBLAS stays single-threaded even with one Kernels thread: its thread count is
    /// process-wide, and bits must not depend on whether another call's scope is open
    /// (see ``GEMMBackend/multiply(splittingAcrossCores:transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``).
    private func withKernelsThreading(_ body: () -> Void) {
        if backend == .openBLAS { GEMM.withSingleThreadedOpenBLAS(body) } else { body() }
    }

    /// Runs the 16 independent per-position GEMMs, taken one at a time by Kernels' threads
    /// when ``splitsGEMMs``, else one by one.
    private func forEachPosition(_ body: (Int) -> Void) {
        guard splitsGEMMs else {
            for position in 0..<16 { body(position) }
            return
        }
        Parallel.forEachDynamic(16, workPerItem: Parallel.minimumParallelWork) { _, position in body(position) }
    }

    /// Splits `0..<count` kernels (or columns of kernels, `workPerItem` apiece) across Kernels'
    /// threads when ``splitsGEMMs`` (for the kernel transforms, which are GEMMs over kernels),
    /// else runs it as one range.
    private func forEachKernelRange(_ count: Int, workPerItem: Int = 16 * 9, _ body: (Range<Int>) -> Void) {
        guard splitsGEMMs else { return body(0..<count) }
        Parallel.forEach(count, workPerItem: workPerItem) { body($0) }
    }

    /// `workspace` holds ``workspaceCount`` floats.
    func run(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
             workspace: UnsafeMutablePointer<Float>, kernel: Kernel) {
        withKernelsThreading { runPass(input: input, output: output, bias: bias, workspace: workspace, kernel: kernel) }
    }

    private func runPass(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                         workspace: UnsafeMutablePointer<Float>, kernel: Kernel) {
        transformWeights(kernel, into: workspace)
        if let product, isNarrow {
            return runSpans(input: input, output: output, bias: bias, workspace: workspace, kernel: kernel, product: product)
        }
        forEachGroup(workspace: workspace) { firstImage, images, buffers in
            let span = TileSpan(images: images, tileRows: 0..<tilesHigh, acrossCores: true)
            transformInput(input + firstImage * inputChannels * height * width, span: span,
                           into: buffers.input, groupTiles: buffers.stride)
            if let product {
                withRowOffsets(stride: buffers.stride) { rowOffsets in
                    forEachPosition { position in
                        multiply(position: position, kernel: kernel, product: product,
                                 input: buffers.input + position * buffers.inputPlane, rowOffsets: rowOffsets,
                                 weights: buffers.weights, products: buffers.products + position * buffers.productPlane,
                                 tiles: buffers.tiles, stride: buffers.stride)
                    }
                }
            } else {
                forEachPosition { position in
                    backend.multiply(transposeA: kernel.isRotated, transposeB: false,
                                     m: outputChannels, n: buffers.tiles, k: inputChannels,
                                     alpha: 1, a: buffers.weights + position * weightPlaneStride,
                                     lda: kernel.isRotated ? outputChannels : inputChannels,
                                     b: buffers.input + position * buffers.inputPlane, ldb: buffers.stride,
                                     beta: 0, c: buffers.products + position * buffers.productPlane, ldc: buffers.stride)
                }
            }
            transformOutput(buffers.products, span: span, groupTiles: buffers.stride,
                            into: output + firstImage * outputChannels * outputHeight * outputWidth, bias: bias)
        }
    }

    /// Whether the backward-data pass's `U_ξ` is transformed `[O][I]` (as the forward pass's is)
    /// rather than in the weight's own order, `[I][O]`: with the product kernel (AVX-512), which
    /// reads `U_ξ` row by row (see `kernels_winograd_kernel_transform_swapped_avx512`).
    private var swapsRotatedKernels: Bool { product?.instructionSet == .avx512 }

    /// `M_ξ = U_ξ · V_ξ` for one position by the product kernel, which reads `U_ξ` in place
    /// either way round (`[O][I]`, or `[I][O]` for a rotated kernel not ``swapsRotatedKernels``)
    /// and `V_ξ` (`[I][tiles]`)
    /// where the input transform put it.
    /// `rowOffsets` (`i · stride` for each input channel `i`) is made once per group or span by
    /// ``withRowOffsets(stride:_:)`` and shared by its 16 positions.
    private func multiply(position: Int, kernel: Kernel, product: ProductKernel, input: UnsafePointer<Float>,
                          rowOffsets: UnsafeBufferPointer<Int>, weights: UnsafePointer<Float>,
                          products: UnsafeMutablePointer<Float>, tiles: Int, stride: Int) {
        let (aRow, aColumn) = kernel.isRotated && !swapsRotatedKernels ? (1, outputChannels) : (inputChannels, 1)
        product.multiply(m: outputChannels, n: tiles, a: weights + position * weightPlaneStride, aRow: aRow, aColumn: aColumn,
                         b: input, rowOffsets: rowOffsets, c: products, ldc: stride)
    }

    /// Calls `body` with the offsets of the `inputChannels` rows of a `V_ξ` plane, `stride` apart.
    private func withRowOffsets(stride: Int, _ body: (UnsafeBufferPointer<Int>) -> Void) {
        (0..<inputChannels).map { $0 * stride }.withUnsafeBufferPointer(body)
    }

    /// Whether all of `U` fits in about 1 MiB (up to 128 → 128 channels). Such layers run the
    /// forward and backward-data passes by spans (``runSpans``), each core reading `U` from
    /// cache, and the weight gradient's products by ``ProductKernel/multiplyTransposed(m:n:k:a:lda:b:ldb:c:ldc:accumulate:)``.
    /// Wider layers keep the groups, multiplied position by position across cores: by spans,
    /// resnet-c4 (256 → 256, `U` 4 MiB) re-read `U` for every 56-tile span and was slower, and
    /// the transposed product, with hundreds of rows of `B` streaming from L2 past each block and
    /// fewer tiles to sum, took 4.75 → 5.1 ms there and 9.9 → 14 ms on 8×512×7×7 (medians),
    /// where resnet-c2 gained 6.9 → 6.6 ms, cifar-64 19.9 → 17.0 ms and 8×128×28×28
    /// 7.9 → 7.6 ms.
    var isNarrow: Bool { 16 * inputChannels * outputChannels <= Self.maximumNarrowWeightFloats }

    /// Largest `U` (all 16 planes) of a narrow layer: 1 MiB, 128 → 128 channels.
    static let maximumNarrowWeightFloats = 1 << 18

    /// The pass with the product kernel by spans: each core takes the next of ``fusedSpans`` as
    /// it finishes one and runs every step of it on its own `V` and `M`, with no barrier
    /// between the steps.
    private func runSpans(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                          workspace: UnsafeMutablePointer<Float>, kernel: Kernel, product: ProductKernel) {
        let spans = fusedSpans
        let spanFloats = groupFloats(tiles: fusedSpanTiles)
        Parallel.forEachDynamic(spans.count, workPerItem: Parallel.minimumParallelWork) { worker, index in
            let transformed = workspace + 16 * weightPlaneStride + worker * spanFloats
            let (firstImage, span) = spans[index]
            let tiles = span.images * span.tileRows.count * tilesWide
            let stride = Self.tileStride(tiles)
            let (inputPlane, productPlane) = (Self.planeStride(inputChannels, tiles: stride), Self.planeStride(outputChannels, tiles: stride))
            let products = transformed + 16 * inputPlane
            transformInput(input + firstImage * inputChannels * height * width, span: span,
                           into: transformed, groupTiles: stride)
            withRowOffsets(stride: stride) { rowOffsets in
                for position in 0..<16 {
                    multiply(position: position, kernel: kernel, product: product, input: transformed + position * inputPlane,
                             rowOffsets: rowOffsets, weights: workspace, products: products + position * productPlane,
                             tiles: tiles, stride: stride)
                }
            }
            transformOutput(products, span: span, groupTiles: stride,
                            into: output + firstImage * outputChannels * outputHeight * outputWidth, bias: bias)
        }
    }

    /// The gradient of the loss with respect to the kernels, given the input and the gradient
    /// with respect to the output (`[batch, outputChannels, outputHeight, outputWidth]`):
    ///
    ///     dg = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B) ] G
    ///
    /// the exact adjoint of ``run(input:output:bias:workspace:kernel:)`` with respect to `g`,
    /// as 16 GEMMs `dU_ξ[o, i] += dM_ξ[o, t] · V_ξ[i, t]ᵀ` accumulated over groups of images.
    /// Outputs that a partial edge tile computes but does not store get a zero gradient.
    ///
    /// - Parameter weightGradient: `[outputChannels, inputChannels, 3, 3]`, overwritten.
    func weightGradient(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        withKernelsThreading {
            weightGradientPass(input: input, outputGradient: outputGradient, weightGradient: weightGradient, workspace: workspace)
        }
    }

    private func weightGradientPass(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                    weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        // dU accumulates in U's place.
        forEachGroup(workspace: workspace) { firstImage, images, buffers in
            let span = TileSpan(images: images, tileRows: 0..<tilesHigh, acrossCores: true)
            transformInput(input + firstImage * inputChannels * height * width, span: span,
                           into: buffers.input, groupTiles: buffers.stride)
            transformOutputGradient(outputGradient + firstImage * outputChannels * outputHeight * outputWidth,
                                    span: span, into: buffers.products, groupTiles: buffers.stride)
            forEachPosition { position in
                let (gradient, transformed) = (buffers.products + position * buffers.productPlane,
                                               buffers.input + position * buffers.inputPlane)
                let sums = buffers.weights + position * weightPlaneStride
                if isNarrow, product?.multiplyTransposed(m: outputChannels, n: inputChannels, k: buffers.tiles, a: gradient,
                                               lda: buffers.stride, b: transformed, ldb: buffers.stride, c: sums,
                                               ldc: inputChannels, accumulate: firstImage > 0) != nil {
                    return
                }
                backend.multiply(transposeA: false, transposeB: true,
                                 m: outputChannels, n: inputChannels, k: buffers.tiles,
                                 alpha: 1, a: gradient, lda: buffers.stride, b: transformed, ldb: buffers.stride,
                                 beta: firstImage == 0 ? 0 : 1, c: sums, ldc: inputChannels)
            }
        }
        untransformWeightGradient(workspace, into: weightGradient)
    }

    /// `dM_ξ[o, t] = (A dY Aᵀ)_ξ` with A = [[1,0],[1,1],[1,−1],[0,−1]]: each 2×2 output-gradient
    /// tile (zero past the edge) spread back onto the 4×4 tile positions.
    private func transformOutputGradient(_ gradient: UnsafePointer<Float>, span: TileSpan,
                                         into transformed: UnsafeMutablePointer<Float>, groupTiles: Int) {
        let planeStride = Self.planeStride(outputChannels, tiles: groupTiles)
        let tilesWide = tilesWide
        if usesVectorTileTransforms {
            forEachPlane(channels: outputChannels, span: span, scratchCount: 0) { channel, image, tileOffset, _ in
                kernels_winograd_output_gradient_transform_avx512(gradient + (image * outputChannels + channel) * outputHeight * outputWidth,
                                                                  outputHeight, outputWidth, span.tileRows.lowerBound,
                                                                  span.tileRows.count, tilesWide,
                                                                  transformed + channel * groupTiles + tileOffset, planeStride)
            }
            return
        }
        let rowLength = 2 * tilesWide
        // Two zero-padded gradient rows, so odd output sizes need no branches.
        forEachTileRow(channels: outputChannels, span: span, scratchCount: 2 * rowLength) { channel, image, tileRow, tileOffset, rows in
            let plane = gradient + (image * outputChannels + channel) * outputHeight * outputWidth
            for k in 0..<2 {
                let row = rows + k * rowLength
                let outputRow = 2 * tileRow + k
                if outputRow < outputHeight {
                    row.update(from: plane + outputRow * outputWidth, count: outputWidth)
                    (row + outputWidth).update(repeating: 0, count: rowLength - outputWidth)
                } else {
                    row.update(repeating: 0, count: rowLength)
                }
            }
            let destination = transformed + channel * groupTiles + tileOffset
            let (top, bottom) = (rows, rows + rowLength)
            for tx in stride(from: 0, to: tilesWide, by: 4) {
                // Four tiles: even and odd columns of each gradient row.
                let (upper, lower) = (load8(top + 2 * tx), load8(bottom + 2 * tx))
                // A·dY (4×2), then (A·dY)·Aᵀ (4×4).
                let (t00, t01) = (upper.evenHalf, upper.oddHalf)
                let (t10, t11) = (t00 + lower.evenHalf, t01 + lower.oddHalf)
                let (t20, t21) = (t00 - lower.evenHalf, t01 - lower.oddHalf)
                let (t30, t31) = (-lower.evenHalf, -lower.oddHalf)
                func emit(row: Int, _ a: SIMD4<Float>, _ b: SIMD4<Float>) {
                    let base = destination + 4 * row * planeStride + tx
                    store4(a, base)
                    store4(a + b, base + planeStride)
                    store4(a - b, base + 2 * planeStride)
                    store4(-b, base + 3 * planeStride)
                }
                emit(row: 0, t00, t01)
                emit(row: 1, t10, t11)
                emit(row: 2, t20, t21)
                emit(row: 3, t30, t31)
            }
        }
    }

    /// `dg = Gᵀ dU G` for every kernel, with Gᵀ = [[1,½,½,0],[0,½,−½,0],[0,½,½,1]]: as one GEMM,
    /// `dg[(o,i)][tap] = Σ_ξ dU_ξ[o, i] · T[ξ][tap]` (see ``transformMatrix``), which reads the 16
    /// planes and writes the weight gradient as contiguous streams; on AVX-512 CPUs
    /// `kernels_winograd_kernel_untransform_avx512`, for the reason ``transformWeights(_:into:)`` gives.
    private func untransformWeightGradient(_ transformed: UnsafePointer<Float>, into weightGradient: UnsafeMutablePointer<Float>) {
        Self.transformMatrix.withUnsafeBufferPointer { matrix in
            forEachKernelRange(outputChannels * inputChannels) { kernels in
                if product?.instructionSet == .avx512 {
                    kernels_winograd_kernel_untransform_avx512(transformed + kernels.lowerBound, weightPlaneStride, kernels.count,
                                                               matrix.baseAddress!, weightGradient + kernels.lowerBound * 9)
                    return
                }
                backend.multiply(transposeA: true, transposeB: false,
                                 m: kernels.count, n: 9, k: 16,
                                 alpha: 1, a: transformed + kernels.lowerBound, lda: weightPlaneStride, b: matrix.baseAddress!, ldb: 9,
                                 beta: 0, c: weightGradient + kernels.lowerBound * 9, ldc: 9)
            }
        }
    }

    /// The tiles a group transforms: tile-rows `tileRows` of each of `images` consecutive
    /// images, stored image after image, tile-row after tile-row.
    struct TileSpan {
        let images: Int
        let tileRows: Range<Int>
        /// Whether the transforms split the channels across cores (false when each core
        /// already runs its own groups).
        let acrossCores: Bool
    }

    /// Runs `body(channel, image, tileRow, tileOffset, scratch)` for every tile-row of the span
    /// and every channel, `tileOffset` being the tile-row's first tile in the group: the loop
    /// nest of the Swift tile transforms, each core with `scratchCount` floats of zero-padded
    /// row copies (see ``forEachPlane(channels:span:scratchCount:_:)``).
    private func forEachTileRow(channels: Int, span: TileSpan, scratchCount: Int,
                                _ body: (_ channel: Int, _ image: Int, _ tileRow: Int, _ tileOffset: Int,
                                         _ scratch: UnsafeMutablePointer<Float>) -> Void) {
        forEachPlane(channels: channels, span: span, scratchCount: scratchCount) { channel, image, tileOffset, scratch in
            for tileRow in span.tileRows {
                body(channel, image, tileRow, tileOffset + (tileRow - span.tileRows.lowerBound) * tilesWide, scratch!)
            }
        }
    }

    /// Runs `body(channel, image, tileOffset, scratch)` for every image of the span and every
    /// channel, `tileOffset` being the span's first tile-row's first tile of that image in the
    /// group (its other tile-rows follow, `tilesWide` tiles each). Channels are split across
    /// cores when the span says so (each writes only its own channel's plane), each core with
    /// `scratchCount` floats of scratch (none, nil, for 0).
    private func forEachPlane(channels: Int, span: TileSpan, scratchCount: Int,
                              _ body: (_ channel: Int, _ image: Int, _ tileOffset: Int,
                                       _ scratch: UnsafeMutablePointer<Float>?) -> Void) {
        let work = span.acrossCores ? span.images * span.tileRows.count * tilesWide * 16 : 0
        Parallel.forEach(channels, workPerItem: work) { channelRange in
            let scratch = scratchCount > 0 ? UnsafeMutablePointer<Float>.allocate(capacity: scratchCount) : nil
            defer { scratch?.deallocate() }
            for channel in channelRange {
                for image in 0..<span.images {
                    body(channel, image, image * span.tileRows.count * tilesWide, scratch)
                }
            }
        }
    }

    /// Whether the tile transforms run as Kernels' AVX-512 kernels (16 tiles a step, no row
    /// copies; `WinogradTileTransforms.c`) rather than in Swift (4 tiles a step): with the
    /// product kernel on AVX-512, as the weight transforms do, unless a test asks for the Swift
    /// ones (``prefersSwiftTileTransforms``). Call-by-call pairs (Swift ÷ AVX-512, medians):
    /// cifar-64 forward 1.114 and weight gradient 1.102, resnet-c2 forward 1.042, backward-data
    /// 1.033, forward+backward 1.026; resnet-c4 1.00–1.02.
    var usesVectorTileTransforms: Bool { !prefersSwiftTileTransforms && product?.instructionSet == .avx512 }

    /// Runs the tile transforms in Swift even where the AVX-512 ones apply: for tests that
    /// compare the two.
    var prefersSwiftTileTransforms = false

    /// `T[ξ][tap] = G[a][r] · G[b][c]` for ξ = 4a + b and tap = 3r + c, with
    /// G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]: the kernel transform `G g Gᵀ` as a 16×9 matrix
    /// acting on a kernel's nine taps (and its transpose is the weight gradient's `Gᵀ dU G`).
    static let transformMatrix: [Float] = {
        let g: [[Float]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        var matrix = [Float](repeating: 0, count: 16 * 9)
        for position in 0..<16 {
            for tap in 0..<9 {
                let (a, b, r, c) = (position / 4, position % 4, tap / 3, tap % 3)
                matrix[position * 9 + tap] = g[a][r] * g[b][c]
            }
        }
        return matrix
    }()

    /// ``transformMatrix`` with its taps reversed: the transform of a kernel rotated by 180°.
    static let rotatedTransformMatrix: [Float] = (0..<16 * 9).map { index in
        transformMatrix[index - index % 9 + 8 - index % 9]
    }

    /// `U_ξ = G g Gᵀ` for every kernel, as one GEMM `U = T · Wᵀ` over the weight seen as an
    /// `(O·I) × 9` matrix: it reads the weight once, in order, and writes the 16 planes as
    /// contiguous streams. (A per-kernel loop through a strided view was measured at a fifth
    /// of a 512-channel layer's time, most of it in the rotated view's cache misses.)
    /// A rotated kernel is transformed in the weight's own channel order with the taps reversed.
    /// On AVX-512 CPUs a kernel of Kernels' own does it 16 kernels at a time
    /// (`kernels_winograd_kernel_transform_avx512`): OpenBLAS spent most of this GEMM (m = 16,
    /// k = 9) packing and zeroing, a quarter of an 8×512×7×7 → 512 forward pass on one thread,
    /// which went 14.3 → 11.6 ms (8×256×14×14 → 256: 8.1 → 7.6 ms; minima of 4 alternating
    /// `prof` runs).
    private func transformWeights(_ kernel: Kernel, into transformed: UnsafeMutablePointer<Float>) {
        let matrix = kernel.isRotated ? Self.rotatedTransformMatrix : Self.transformMatrix
        if kernel.isRotated && swapsRotatedKernels {
            // The weight is `[inputChannels][outputChannels]` kernels here; `U_ξ` is made `[O][I]`.
            let (rows, columns) = (inputChannels, outputChannels)
            matrix.withUnsafeBufferPointer { matrix in
                // By runs of columns (each a column of kernels, `rows · 9` floats of weight).
                forEachKernelRange(columns, workPerItem: rows * 9) { range in
                    kernels_winograd_kernel_transform_swapped_avx512(kernel.weight, rows, columns, range.lowerBound, range.upperBound,
                                                                     matrix.baseAddress!, transformed, weightPlaneStride)
                }
            }
            return
        }
        matrix.withUnsafeBufferPointer { matrix in
            forEachKernelRange(outputChannels * inputChannels) { kernels in
                if product?.instructionSet == .avx512 {
                    kernels_winograd_kernel_transform_avx512(kernel.weight + kernels.lowerBound * 9, kernels.count,
                                                             matrix.baseAddress!, transformed + kernels.lowerBound,
                                                             weightPlaneStride)
                    return
                }
                backend.multiply(transposeA: false, transposeB: true,
                                 m: 16, n: kernels.count, k: 9,
                                 alpha: 1, a: matrix.baseAddress!, lda: 9, b: kernel.weight + kernels.lowerBound * 9, ldb: 9,
                                 beta: 0, c: transformed + kernels.lowerBound, ldc: weightPlaneStride)
            }
        }
    }

    /// `V_ξ[i, t] = (Bᵀ d B)_ξ` with Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]], for
    /// every input channel and tile of a group of images. Channels are split across cores.
    private func transformInput(_ images: UnsafePointer<Float>, span: TileSpan,
                                into transformed: UnsafeMutablePointer<Float>, groupTiles: Int) {
        let planeStride = Self.planeStride(inputChannels, tiles: groupTiles)
        let tilesWide = tilesWide
        if usesVectorTileTransforms {
            forEachPlane(channels: inputChannels, span: span, scratchCount: 0) { channel, image, tileOffset, _ in
                kernels_winograd_input_transform_avx512(images + (image * inputChannels + channel) * height * width, height, width,
                                                        padding.height, padding.width, span.tileRows.lowerBound,
                                                        span.tileRows.count, tilesWide,
                                                        transformed + channel * groupTiles + tileOffset, planeStride)
            }
            return
        }
        let rowLength = paddedRowLength
        // Four zero-padded input rows: the 4×4 tiles of one tile-row read exactly these.
        forEachTileRow(channels: inputChannels, span: span, scratchCount: 4 * rowLength) { channel, image, tileRow, tileOffset, rows in
            let plane = images + (image * inputChannels + channel) * height * width
            for k in 0..<4 {
                let row = rows + k * rowLength
                row.update(repeating: 0, count: rowLength)
                let inputRow = 2 * tileRow - padding.height + k
                guard inputRow >= 0, inputRow < height else { continue }
                let count = min(width, rowLength - padding.width)
                (row + padding.width).update(from: plane + inputRow * width, count: count)
            }
            let destination = transformed + channel * groupTiles + tileOffset
            let (r0, r1, r2, r3) = (rows, rows + rowLength, rows + 2 * rowLength, rows + 3 * rowLength)
            for tx in stride(from: 0, to: tilesWide, by: 4) {
                // Column transform of each row (d·B) for four tiles at once, then the
                // row transform (Bᵀ·).
                let (a0, a1, a2, a3) = rowTransform(r0 + 2 * tx)
                let (b0, b1, b2, b3) = rowTransform(r1 + 2 * tx)
                let (c0, c1, c2, c3) = rowTransform(r2 + 2 * tx)
                let (d0, d1, d2, d3) = rowTransform(r3 + 2 * tx)
                let base = destination + tx
                store4(a0 - c0, base)
                store4(a1 - c1, base + planeStride)
                store4(a2 - c2, base + 2 * planeStride)
                store4(a3 - c3, base + 3 * planeStride)
                store4(b0 + c0, base + 4 * planeStride)
                store4(b1 + c1, base + 5 * planeStride)
                store4(b2 + c2, base + 6 * planeStride)
                store4(b3 + c3, base + 7 * planeStride)
                store4(c0 - b0, base + 8 * planeStride)
                store4(c1 - b1, base + 9 * planeStride)
                store4(c2 - b2, base + 10 * planeStride)
                store4(c3 - b3, base + 11 * planeStride)
                store4(b0 - d0, base + 12 * planeStride)
                store4(b1 - d1, base + 13 * planeStride)
                store4(b2 - d2, base + 14 * planeStride)
                store4(b3 - d3, base + 15 * planeStride)
            }
        }
    }

    /// `Y = Aᵀ M A` with Aᵀ = [[1,1,1,0],[0,1,−1,−1]], plus bias, written into NCHW output.
    /// Output channels are split across cores.
    private func transformOutput(_ products: UnsafePointer<Float>, span: TileSpan, groupTiles: Int,
                                 into output: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?) {
        let planeStride = Self.planeStride(outputChannels, tiles: groupTiles)
        let tilesWide = tilesWide
        if usesVectorTileTransforms {
            forEachPlane(channels: outputChannels, span: span, scratchCount: 0) { channel, image, tileOffset, _ in
                kernels_winograd_output_transform_avx512(products + channel * groupTiles + tileOffset, planeStride,
                                                         span.tileRows.lowerBound, span.tileRows.count, tilesWide,
                                                         output + (image * outputChannels + channel) * outputHeight * outputWidth,
                                                         outputHeight, outputWidth, bias?[channel] ?? 0)
            }
            return
        }
        let rowLength = 2 * tilesWide
        // Two full-width output rows, written then copied in, so odd sizes need no branches.
        forEachTileRow(channels: outputChannels, span: span, scratchCount: 2 * rowLength) { channel, image, tileRow, tileOffset, rows in
            let offset = bias?[channel] ?? 0
            let plane = output + (image * outputChannels + channel) * outputHeight * outputWidth
            let products = products + channel * groupTiles + tileOffset
            let (top, bottom) = (rows, rows + rowLength)
            for tx in stride(from: 0, to: tilesWide, by: 4) {
                func m(_ position: Int) -> SIMD4<Float> { load4(products + position * planeStride + tx) }
                // Row transform (Aᵀ·) of each column, then column transform (·A).
                let s00 = m(0) + m(4) + m(8), s01 = m(1) + m(5) + m(9)
                let s02 = m(2) + m(6) + m(10), s03 = m(3) + m(7) + m(11)
                let s10 = m(4) - m(8) - m(12), s11 = m(5) - m(9) - m(13)
                let s12 = m(6) - m(10) - m(14), s13 = m(7) - m(11) - m(15)
                // Interleave each tile's two columns back into pixel order.
                var upper = SIMD8<Float>(), lower = SIMD8<Float>()
                upper.evenHalf = s00 + s01 + s02 + offset
                upper.oddHalf = s01 - s02 - s03 + offset
                lower.evenHalf = s10 + s11 + s12 + offset
                lower.oddHalf = s11 - s12 - s13 + offset
                store8(upper, top + 2 * tx)
                store8(lower, bottom + 2 * tx)
            }
            let outputRow = 2 * tileRow
            (plane + outputRow * outputWidth).update(from: top, count: outputWidth)
            if outputRow + 1 < outputHeight {
                (plane + (outputRow + 1) * outputWidth).update(from: bottom, count: outputWidth)
            }
        }
    }
}

/// `d·B` for four tiles of one input row starting at `row` (8 floats apart per tile pair):
/// even and odd columns come from two overlapping 8-float loads.
@inline(__always)
private func rowTransform(_ row: UnsafePointer<Float>) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
    let (here, next) = (load8(row), load8(row + 2))
    let (d0, d1, d2, d3) = (here.evenHalf, here.oddHalf, next.evenHalf, next.oddHalf)
    return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
}

@inline(__always)
private func load4(_ pointer: UnsafePointer<Float>) -> SIMD4<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD4<Float>.self)
}

@inline(__always)
private func load8(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func store4(_ value: SIMD4<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD4<Float>.self)
}

@inline(__always)
private func store8(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
}
