/// The three GEMM-based passes of a convolution over raw buffers, shared by ``Conv2D`` (which
/// runs them as forward / backward) and ``ConvTranspose2D`` (whose forward is the backward-data
/// pass and whose backward-data is the forward pass).
///
/// `geometry` describes the image side (`batch × channels × height × width`), `filters` the
/// other side (`batch × filters × outputHeight × outputWidth`), and the weight is
/// `filters × geometry.columnRows`, row-major. Buffers are assumed valid: callers validate.
///
/// Eleven algorithms, chosen by shape:
/// - 3×3 stride-1 with enough channels: Winograd F(2×2, 3×3) for all passes (``WinogradF2x3``);
///   dilated ones padded by their dilation with 32+ channels and filters too, on the phase
///   sub-images (``DilatedWinograd``; backward-data on the rotated kernels).
/// - 5×5 and 7×7 stride-1 with 32+ channels and 32+ filters on AVX2-only CPUs: Winograd
///   F(4×4, 5×5) and F(2×2, 7×7) for the forward and backward-data passes (on the rotated
///   kernels), F(2×2, 5×5) and F(2×2, 7×7) for the weight gradient (``LargeKernelWinograd``).
/// - 3×3 stride-2 layers with 48+ channels and filters and 64+ output tiles of 7×7 in the batch on
///   AVX2-only CPUs: the forward pass by Winograd F(7×7, 2×2) over the four phase sub-images,
///   a 2×2 stride-1 layer of 4·C channels (``StrideTwoWinograd``).
/// - few input channels, or a 5×5+ stride-1 kernel with few filters, on AVX2 CPUs: a direct
///   convolution (``DirectConvolution``) for the forward pass and the weight gradient, and for
///   the backward-data pass of stride-1 layers where the rotated kernel qualifies too (on
///   AVX2-only CPUs, Winograd's layers with 8–16 filters among them).
/// - the forward and backward-data passes of other stride-1 layers with 64+ channels and 64+
///   filters (on AVX2-only CPUs, 5×5 kernels and larger with 32+ of each, ahead of the direct
///   kernel with 48+ channels or 7×7+): a convolution with the filters as the vector dimension
///   over a channel-last copy (``ChannelLastConvolution``; backward-data on the rotated kernels).
///   The same for the forward pass of such strided layers.
/// - the weight gradient of other layers with kernel rows of 64+ floats (`KW·C`, or `C` per
///   tap when dilated) on AVX-512 CPUs (strided ones with a partial sum of 512 KiB to 2 MiB):
///   products over a channel-last copy (``ChannelLastWeightGradient``).
/// - strided layers on AVX-512 CPUs: the weight gradient and the forward pass of those the
///   channel-last paths leave, as products over a phase-split copy of each image
///   (``ImplicitConvolution``); backward-data as below. The
///   same products for the forward and backward-data passes of stride-1 layers whose weight
///   stays in L2 (the backward-data pass as a forward pass on the rotated kernels).
/// - 1×1 stride-1 unpadded: the image is its own column matrix; each pass is a plain GEMM
///   (on AVX-512 CPUs, where it pays, the product kernel instead: ``PointwiseProduct``,
///   ``PointwiseWeightGradient``).
/// - the backward-data pass of stride-2 layers with 64+ channels and filters on AVX-512 CPUs:
///   one stride-1 convolution per output phase by the channel-last kernel (``PhaseBackwardData``).
/// - anything else: im2col + GEMM.
///
/// The last two go through GEMM in blocks of output positions (``ColumnBlocking``): a band of
/// output rows of one image when an image's column matrix is wide (so it is still in cache when
/// GEMM reads it), several whole images side by side when it is narrow (so GEMM gets enough
/// columns). Whole large images in one wider GEMM were measured slower, so only narrow ones
/// are grouped.
///
/// Memory is bounded whatever the batch: one block (or one group of Winograd tiles) per thread
/// at a time goes through the workspace (``workspaceCount``).
struct ConvolutionEngine {
    let geometry: ConvGeometry
    let filters: Int
    let backend: GEMMBackend
    /// 1×1, stride-1, unpadded: the image already is its column matrix, so im2col and col2im
    /// are skipped and each pass is a plain GEMM.
    var isPointwise: Bool {
        geometry.kernel == 1 && geometry.stride == 1 && geometry.padding == 0
    }

    /// 3×3 stride-1 layers with enough channels run all three passes through Winograd
    /// F(2×2, 3×3) (see ``WinogradF2x3``).
    var usesWinograd: Bool { WinogradF2x3.applies(to: geometry, filters: filters) }

    /// Few input channels (an RGB stem, MNIST) or a large stride-1 kernel with few filters: the
    /// forward pass runs the AVX2 direct kernel instead of im2col + GEMM (see
    /// ``DirectConvolution``), and so does the weight gradient.
    var forwardDirect: DirectConvolution? {
        DirectConvolution.applies(to: geometry, filters: filters, backend: backend)
            ? DirectConvolution(geometry: geometry, filters: filters) : nil
    }

    /// Layers on AVX-512 CPUs that neither Winograd nor the direct kernel takes, strided or with
    /// a weight that stays in L2: the forward pass as one product per image over a phase-split
    /// copy, without im2col (see ``ImplicitConvolution/pays``).
    var forwardImplicit: ImplicitConvolution? {
        guard backend == .openBLAS, let product = ProductKernel.preferred, !usesWinograd, forwardDirect == nil else { return nil }
        let implicit = ImplicitConvolution(geometry: geometry, filters: filters, product: product)
        return implicit.pays ? implicit : nil
    }

    /// Layers larger than 1×1 with a kernel row of 64+ floats (`KW·C`) that Winograd does not
    /// take, on AVX-512 CPUs (on AVX2-only ones, stride-1 layers of 7×7 and larger): the weight
    /// gradient by the product kernel over a channel-last copy (see ``ChannelLastWeightGradient``),
    /// strided layers included. Those whose weight gradient
    /// the products over a phase-split copy can also take (``ImplicitConvolution/weightGradientPays``)
    /// ran there until Nov 27 2026, on `make bench-peers` figures taken one side after the other
    /// (resnet-c3s2's backward-weight 6.1–10.1 ms in five runs against 6.05–6.57); call-by-call
    /// pairs (channel-last ÷ phase-split: resnet-c3s2 0.900, its forward+backward 0.959;
    /// 16×32×32×32 → 64 s2 0.846; 4×64×112×112 → 64 s2 0.985) and three pairs of `make
    /// bench-peers` runs in rounds (resnet-c3s2 backward-weight 1.04–1.08× PyTorch against
    /// 0.93–1.03×) put the channel-last products ahead.
    var channelLastWeightGradient: ChannelLastWeightGradient? {
        guard backend == .openBLAS, !usesWinograd, let product = ChannelLastWeightGradient.product(for: geometry),
              ChannelLastWeightGradient.applies(to: geometry, filters: filters) else { return nil }
        return ChannelLastWeightGradient(geometry: geometry, filters: filters, product: product)
    }

    /// Pointwise layers on AVX-512 CPUs: forward and backward-data by the product kernel, each
    /// image read in place, for the passes where that pays (see ``PointwiseProduct/pays(rows:depth:)``).
    var pointwiseProduct: PointwiseProduct? {
        guard isPointwise, backend == .openBLAS, let product = ProductKernel.preferred else { return nil }
        return PointwiseProduct(geometry: geometry, filters: filters, product: product)
    }

    /// Pointwise layers on AVX-512 CPUs: the weight gradient by the product kernel, reading each
    /// image in place (see ``PointwiseWeightGradient``).
    var pointwiseWeightGradient: PointwiseWeightGradient? {
        guard isPointwise, backend == .openBLAS, let product = ProductKernel.preferred else { return nil }
        let pointwise = PointwiseWeightGradient(geometry: geometry, filters: filters, product: product)
        return pointwise.pays ? pointwise : nil
    }

    /// The backward-data pass of a stride-1 layer as a forward convolution (for Winograd's
    /// layers only where the direct kernel takes it, ``winogradBackwardDataDirect``): of
    /// the output gradient (`filters` channels) with each kernel rotated by 180° and the channel
    /// axes swapped, padded by `d·(k − 1) − p` (as Winograd's backward pass). Nil where that
    /// convolution's output is not the image: padding beyond the kernel's reach, or a transposed
    /// layer's output padding (those stay on col2im).
    private var rotatedGeometry: ConvGeometry? {
        let g = geometry
        guard g.stride == 1 else { return nil }
        let padding = Size2D(height: g.dilation.height * (g.kernel.height - 1) - g.padding.height,
                             width: g.dilation.width * (g.kernel.width - 1) - g.padding.width)
        guard padding.height >= 0, padding.width >= 0,
              let rotated = try? ConvGeometry(batch: g.batch, channels: filters, height: g.outputHeight, width: g.outputWidth,
                                              kernel: g.kernel, padding: padding, dilation: g.dilation),
              rotated.outputHeight == g.height, rotated.outputWidth == g.width else { return nil }
        return rotated
    }

    /// Stride-1 layers whose backward-data pass (``rotatedGeometry``) the direct kernel runs.
    var backwardDataDirect: DirectConvolution? {
        guard let rotated = rotatedGeometry,
              DirectConvolution.applies(to: rotated, filters: geometry.channels, backend: backend) else { return nil }
        return DirectConvolution(geometry: rotated, filters: geometry.channels)
    }

    /// Layers with 64+ channels and filters (5×5+ kernels with 32+ on AVX2-only CPUs) that
    /// Winograd does not take, nor the direct kernel unless this one is ahead of it there
    /// (``ChannelLastConvolution/precedesDirect(_:)``): the forward pass with the filters as the
    /// vector dimension (see ``ChannelLastConvolution``), ahead of the products over a
    /// phase-split copy and of im2col.
    var forwardChannelLast: ChannelLastConvolution? {
        guard backend == .openBLAS, ChannelLastConvolution.isSupported, !usesWinograd,
              forwardDirect == nil || ChannelLastConvolution.precedesDirect(geometry),
              ChannelLastConvolution.applies(to: geometry, filters: filters) else { return nil }
        return ChannelLastConvolution(geometry: geometry, filters: filters)
    }

    /// The same for the backward-data pass of such layers (``rotatedGeometry``: the output
    /// gradient's `F` channels in, the image's `C` out).
    var backwardDataChannelLast: ChannelLastConvolution? {
        guard backend == .openBLAS, ChannelLastConvolution.isSupported, let rotated = rotatedGeometry,
              backwardDataDirect == nil || ChannelLastConvolution.precedesDirect(rotated),
              ChannelLastConvolution.applies(to: rotated, filters: geometry.channels) else { return nil }
        return ChannelLastConvolution(geometry: rotated, filters: geometry.channels)
    }

    /// Stride-1 layers whose backward-data pass (``rotatedGeometry``) the direct kernel does not
    /// take and the product kernel does, as a forward pass (``ImplicitConvolution/pays``: a
    /// weight that stays in L2) instead of a GEMM into columns and col2im. Minima of 3 or 4
    /// alternating runs, 2 threads: 8×64×28×28 → 64 7×7 16.3 → 10.9 ms, 8×64×32×32 → 8 3×3
    /// 1.28 → 0.39, 8×32×56×56 → 96 5×5 20.9 → 18.6, 8×64×32×32 → 128 5×5 14.0 → 13.3 (one
    /// thread 28.1 → 25.2).
    var backwardDataImplicit: ImplicitConvolution? {
        guard backend == .openBLAS, let product = ProductKernel.preferred, backwardDataDirect == nil,
              let rotated = rotatedGeometry else { return nil }
        let implicit = ImplicitConvolution(geometry: rotated, filters: geometry.channels, product: product)
        return implicit.pays ? implicit : nil
    }

    /// Stride-2 layers with 64+ channels and filters on AVX-512 CPUs: the backward-data pass by
    /// output phases, each a stride-1 convolution by the channel-last kernel (see
    /// ``PhaseBackwardData``), instead of a GEMM into columns and col2im.
    var backwardDataPhases: PhaseBackwardData? {
        guard backend == .openBLAS, ProductKernel.preferred != nil,
              PhaseBackwardData.applies(to: geometry, filters: filters) else { return nil }
        return PhaseBackwardData(geometry: geometry, filters: filters)
    }

    /// The direct kernel for the backward-data pass of a Winograd layer whose rotated kernels
    /// have few enough channels (``DirectConvolution/maximumFewChannels(stride:)``: 8–16 filters,
    /// on AVX2-only CPUs). On a 2-core AMD EPYC, call-by-call pairs' median ratios against
    /// Winograd's backward-data pass: 8×64×32×32 → 8 3×3 0.48, 8×32×56×56 → 8 0.51,
    /// 8×64×32×32 → 16 0.71, 8×32×56×56 → 16 0.77, 8×128×28×28 → 12 0.68.
    var winogradBackwardDataDirect: DirectConvolution? {
        guard usesWinograd else { return nil }
        return backwardDataDirect
    }

    /// 5×5 and 7×7 stride-1 layers with 32+ channels and filters on AVX2-only CPUs: the forward
    /// pass by Winograd F(4×4, 5×5) or F(2×2, 7×7) (see ``LargeKernelWinograd``), ahead of the
    /// channel-last and direct kernels.
    var forwardLargeWinograd: LargeKernelWinograd? {
        backend == .openBLAS ? LargeKernelWinograd.forwardPass(geometry, filters: filters) : nil
    }

    /// The same for the weight gradient, by F(2×2, r×r).
    var weightGradientLargeWinograd: LargeKernelWinograd? {
        guard backend == .openBLAS, LargeKernelWinograd.applies(to: geometry, filters: filters) else { return nil }
        return LargeKernelWinograd(geometry: geometry, filters: filters)
    }

    /// The same for the backward-data pass of such layers, as a forward pass on the rotated
    /// kernels (``rotatedGeometry``).
    var backwardDataLargeWinograd: LargeKernelWinograd? { onRotatedKernels(LargeKernelWinograd.forwardPass) }

    /// 3×3 stride-2 layers with 48+ channels and filters and enough tiles on AVX2-only CPUs: the forward pass by
    /// Winograd F(7×7, 2×2) over the four phase sub-images (see ``StrideTwoWinograd``).
    var forwardStrideTwoWinograd: StrideTwoWinograd? {
        backend == .openBLAS ? StrideTwoWinograd.forwardPass(geometry, filters: filters) : nil
    }

    /// Dilated 3×3 stride-1 layers padded by their dilation: all three passes by Winograd
    /// F(2×2, 3×3) on the phase sub-images (see ``DilatedWinograd``).
    var forwardDilatedWinograd: DilatedWinograd? {
        backend == .openBLAS ? DilatedWinograd.forwardPass(geometry, filters: filters) : nil
    }

    /// The same for the backward-data pass, on the rotated kernels (``rotatedGeometry``: a
    /// dilated 3×3 layer padded by its dilation again).
    var backwardDataDilatedWinograd: DilatedWinograd? { onRotatedKernels(DilatedWinograd.forwardPass) }

    /// `make(rotatedGeometry, channels)` with the OpenBLAS backend: a forward convolution for
    /// the backward-data pass, the output gradient's `F` channels in and the image's `C` out.
    private func onRotatedKernels<Convolution>(_ make: (ConvGeometry, _ filters: Int) -> Convolution?) -> Convolution? {
        guard backend == .openBLAS, let rotated = rotatedGeometry else { return nil }
        return make(rotated, geometry.channels)
    }

    /// The forward convolution that runs the backward-data pass on rotated kernels, if one does.
    var backwardDataRotated: (any ForwardConvolution)? {
        backwardDataLargeWinograd ?? backwardDataDilatedWinograd ?? backwardDataChannelLast ?? backwardDataDirect ?? backwardDataImplicit
    }

    /// Floats the rotated kernels of the backward-data pass take at the start of the workspace:
    /// a multiple of 16, so what follows starts on a cache line as the workspace does (the
    /// product kernel's rows run at half speed off the line).
    private var rotatedWeightFloats: Int { (filters * geometry.columnRows + 15) / 16 * 16 }

    /// The forward pass as a Winograd convolution: image side in, filter side out.
    var forwardWinograd: WinogradF2x3 {
        let g = geometry
        return WinogradF2x3(batch: g.batch, inputChannels: g.channels, height: g.height, width: g.width,
                            outputChannels: filters, padding: g.padding, backend: backend)
    }

    /// The backward-data pass as a Winograd convolution: filter side in, image side out, with
    /// padding `2 − p` (a "full" correlation with the rotated kernel).
    var backwardDataWinograd: WinogradF2x3 {
        let g = geometry
        return WinogradF2x3(batch: g.batch, inputChannels: filters, height: g.outputHeight, width: g.outputWidth,
                            outputChannels: g.channels,
                            padding: Size2D(height: 2 - g.padding.height, width: 2 - g.padding.width), backend: backend)
    }

    /// What runs the forward pass (Winograd apart, which runs all three): the first that takes
    /// the layer, else im2col + GEMM blocks (`columns`).
    enum ForwardPath {
        case winograd
        case convolution(any ForwardConvolution)
        case pointwise(PointwiseProduct)
        case columns
    }

    /// What runs the backward-data pass: Winograd, a forward convolution on the rotated kernels,
    /// the pointwise product, else GEMM blocks and col2im (`columns`).
    enum BackwardDataPath {
        case winograd
        case rotated(any ForwardConvolution)
        case pointwise(PointwiseProduct)
        case phases(PhaseBackwardData)
        case columns
    }

    /// What runs the weight gradient, else im2col + GEMM blocks (`columns`).
    enum WeightGradientPath {
        case winograd
        case largeWinograd(LargeKernelWinograd)
        case dilatedWinograd(DilatedWinograd)
        case channelLast(ChannelLastWeightGradient)
        case direct(DirectConvolution)
        case pointwise(PointwiseWeightGradient)
        case implicit(ImplicitConvolution)
        case columns
    }

    var forwardPath: ForwardPath {
        if usesWinograd { return .winograd }
        if let winograd = forwardLargeWinograd { return .convolution(winograd) }
        if let dilated = forwardDilatedWinograd { return .convolution(dilated) }
        if let strided = forwardStrideTwoWinograd { return .convolution(strided) }
        // Nil where the direct kernel takes the layer, unless it is ahead of it there.
        if let channelLast = forwardChannelLast { return .convolution(channelLast) }
        if let direct = forwardDirect { return .convolution(direct) }
        if let implicit = forwardImplicit { return .convolution(implicit) }
        if let pointwise = pointwiseProduct, pointwise.forwardPays { return .pointwise(pointwise) }
        return .columns
    }

    var backwardDataPath: BackwardDataPath {
        if usesWinograd {
            // Winograd layers with few filters (8–16, on AVX2-only CPUs): the rotated kernels have
            // that few channels, which the direct kernel takes (see ``winogradBackwardDataDirect``).
            if let direct = winogradBackwardDataDirect { return .rotated(direct) }
            return .winograd
        }
        if let rotated = backwardDataRotated { return .rotated(rotated) }
        if let pointwise = pointwiseProduct, pointwise.backwardDataPays { return .pointwise(pointwise) }
        if let phases = backwardDataPhases { return .phases(phases) }
        return .columns
    }

    var weightGradientPath: WeightGradientPath {
        if usesWinograd { return .winograd }
        if let winograd = weightGradientLargeWinograd { return .largeWinograd(winograd) }
        if let dilated = forwardDilatedWinograd { return .dilatedWinograd(dilated) }
        if let channelLast = channelLastWeightGradient { return .channelLast(channelLast) }
        if let direct = forwardDirect { return .direct(direct) }
        if let pointwise = pointwiseWeightGradient { return .pointwise(pointwise) }
        if let implicit = forwardImplicit, implicit.weightGradientPays { return .implicit(implicit) }
        return .columns
    }

    /// Whether some pass goes through the im2col / GEMM blocks, whose slices the workspace then holds.
    private var usesColumnSlices: Bool {
        if case .columns = forwardPath { return true }
        if case .columns = backwardDataPath { return true }
        if case .columns = weightGradientPath { return true }
        return false
    }

    /// Floats of scratch space the passes need (the largest of them, so one buffer serves a
    /// whole backward call).
    var workspaceCount: Int {
        if usesWinograd {
            let winograd = max(forwardWinograd.workspaceCount, backwardDataWinograd.workspaceCount)
            guard let direct = winogradBackwardDataDirect else { return winograd }
            return max(winograd, rotatedWeightFloats + direct.workspaceCount)
        }
        let forward = switch forwardPath {
        case .convolution(let convolution): convolution.workspaceCount
        case .winograd, .pointwise, .columns: 0
        }
        let backwardData = switch backwardDataPath {
        case .rotated(let rotated): rotatedWeightFloats + rotated.workspaceCount
        case .phases(let phases): phases.workspaceCount
        case .winograd, .pointwise, .columns: 0
        }
        let weightGradient = switch weightGradientPath {
        case .largeWinograd(let winograd): winograd.workspaceCount
        case .dilatedWinograd(let dilated): dilated.workspaceCount
        case .channelLast(let channelLast): channelLast.workspaceCount
        case .direct(let direct): direct.weightGradientWorkspaceCount
        case .pointwise(let pointwise): pointwise.workspaceCount
        case .implicit(let implicit): implicit.workspaceCount
        case .winograd, .columns: 0
        }
        return max(usesColumnSlices ? imageWorkers * sliceCount : 0, forward, backwardData, weightGradient)
    }

    /// Threads the im2col and pointwise passes split the batch across. With OpenBLAS and more
    /// than one image, each thread takes a contiguous run of images and runs single-threaded
    /// OpenBLAS and serial im2col/col2im on its own workspace slice: measured faster than
    /// image-by-image two-thread calls, whose idle OpenBLAS workers spin against Kernels' own
    /// threads between GEMMs. Other backends, and a single image, use one thread here and
    /// parallelize inside each call instead (im2col/col2im by rows or channels, an OpenBLAS
    /// GEMM by blocks of columns on Kernels' threads: ``GEMMBackend/multiply(splittingAcrossCores:transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``).
    var imageWorkers: Int {
        backend == .openBLAS ? geometry.imageWorkers(filters: filters) : 1
    }

    /// Multiply-adds of one image's GEMM: what decides whether splitting the batch pays.
    private var imageWork: Int { geometry.imageWork(filters: filters) }

    /// How each thread's run of images is cut into GEMM blocks.
    var blocking: ColumnBlocking {
        let g = geometry
        return ColumnBlocking(columnRows: g.columnRows, outputHeight: g.outputHeight, outputWidth: g.outputWidth,
                              images: (g.batch + imageWorkers - 1) / imageWorkers, readsInPlace: isPointwise)
    }

    /// One thread's scratch: the block's column matrix (absent for a pointwise band, which reads
    /// the image in place), a filter-side staging matrix when blocks group images, and a partial
    /// weight gradient when several threads accumulate one.
    private struct Slice {
        let columns: UnsafeMutablePointer<Float>?
        let staging: UnsafeMutablePointer<Float>?
        let partialWeightGradient: UnsafeMutablePointer<Float>?
    }

    private var sliceLayout: (columns: Int, staging: Int, partialWeightGradient: Int) {
        let b = blocking
        return (columns: isPointwise && !b.groupsImages ? 0 : geometry.columnRows * b.maximumColumns,
                staging: b.groupsImages ? filters * b.maximumColumns : 0,
                partialWeightGradient: imageWorkers > 1 ? filters * geometry.columnRows : 0)
    }

    /// Floats of one thread's workspace slice.
    private var sliceCount: Int {
        let layout = sliceLayout
        return layout.columns + layout.staging + layout.partialWeightGradient
    }

    private func slice(at base: UnsafeMutablePointer<Float>?) -> Slice {
        let layout = sliceLayout
        func part(_ offset: Int, _ count: Int) -> UnsafeMutablePointer<Float>? { count > 0 ? base! + offset : nil }
        return Slice(columns: part(0, layout.columns), staging: part(layout.columns, layout.staging),
                     partialWeightGradient: part(layout.columns + layout.staging, layout.partialWeightGradient))
    }

    /// Runs `body(images, slice, alone)` over the batch: once on the calling thread (`alone`:
    /// each step spreads over every core itself), or on images split across threads, each with
    /// its own workspace slice. Either way OpenBLAS is single-threaded for the whole pass, set
    /// once here rather than around each block's GEMM.
    ///
    /// With `imageByImage` (passes whose images are independent: forward, backward-data),
    /// threads take one image at a time as they finish (``Parallel/forEachDynamic(_:workPerItem:_:)``),
    /// unless blocks group several small images; otherwise (the weight gradient's partial sums)
    /// each takes a fixed run. Without `splitsBatch` the whole batch runs on the calling thread
    /// as with one core (``weightGradientSplitsBatch``).
    private func forEachImageRun(workspace: UnsafeMutablePointer<Float>?, imageByImage: Bool, splitsBatch: Bool = true,
                                 _ body: (_ images: Range<Int>, _ slice: Slice, _ alone: Bool) -> Void) {
        guard backend == .openBLAS else {
            return runImages(workspace: workspace, imageByImage: imageByImage, splitsBatch: splitsBatch, body)
        }
        GEMM.withSingleThreadedOpenBLAS { runImages(workspace: workspace, imageByImage: imageByImage, splitsBatch: splitsBatch, body) }
    }

    private func runImages(workspace: UnsafeMutablePointer<Float>?, imageByImage: Bool, splitsBatch: Bool,
                           _ body: (_ images: Range<Int>, _ slice: Slice, _ alone: Bool) -> Void) {
        guard imageWorkers > 1, splitsBatch else {
            body(0..<geometry.batch, slice(at: workspace), true)
            return
        }
        let sliceCount = sliceCount
        if imageByImage && !blocking.groupsImages {
            Parallel.forEachDynamic(geometry.batch, workPerItem: imageWork) { worker, image in
                body(image..<image + 1, slice(at: workspace.map { $0 + worker * sliceCount }), false)
            }
            return
        }
        Parallel.forEachChunk(geometry.batch, workPerItem: imageWork) { chunk, images in
            body(images, slice(at: workspace.map { $0 + chunk * sliceCount }), false)
        }
    }

    /// `filters · outputPlaneSize`: the elements of one image's output.
    var outputImageSize: Int { filters * geometry.outputPlaneSize }

    /// `output[n] = weight · im2col(input[n]) + bias`, for each image `n`.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let g = geometry
        switch forwardPath {
        case .winograd:
            return forwardWinograd.run(input: input, output: output, bias: bias, workspace: workspace!, kernel: .forward(weight))
        case .convolution(let convolution):
            return convolution.forward(input: input, weight: weight, bias: bias, output: output, workspace: workspace!)
        case .pointwise(let pointwise):
            return pointwise.forward(input: input, weight: weight, bias: bias, output: output)
        case .columns:
            break
        }
        let blocking = blocking
        forEachImageRun(workspace: workspace, imageByImage: true) { images, slice, alone in
            blocking.forEachBlock(of: images) { block, rows in
                let columns = columnsOf(input, images: block, rows: rows, into: slice.columns, parallel: alone)
                let width = columns.leadingDimension
                guard block.count > 1 else {
                    let destination = output + block.lowerBound * outputImageSize + rows.lowerBound * g.outputWidth
                    if let bias {
                        // Fused bias: start each output row at its bias and let GEMM accumulate onto it.
                        for filter in 0..<filters {
                            (destination + filter * g.outputPlaneSize).update(repeating: bias[filter], count: width)
                        }
                    }
                    backend.multiply(splittingAcrossCores: alone, transposeA: false, transposeB: false,
                                     m: filters, n: width, k: g.columnRows,
                                     alpha: 1, a: weight, lda: g.columnRows, b: columns.base, ldb: width,
                                     beta: bias == nil ? 0 : 1, c: destination, ldc: g.outputPlaneSize)
                    return
                }
                // Side by side images: GEMM into staging, then each image to its place (+ bias).
                backend.multiply(splittingAcrossCores: alone, transposeA: false, transposeB: false,
                                 m: filters, n: width, k: g.columnRows,
                                 alpha: 1, a: weight, lda: g.columnRows, b: columns.base, ldb: width,
                                 beta: 0, c: slice.staging!, ldc: width)
                for (index, image) in block.enumerated() {
                    VectorOperations.copyMatrix(rows: filters, columns: g.outputPlaneSize,
                                                from: slice.staging! + index * g.outputPlaneSize, sourceStride: width,
                                                to: output + image * outputImageSize, destinationStride: g.outputPlaneSize,
                                                rowBias: bias)
                }
            }
        }
    }

    /// `inputGradient[n] = col2im(weightᵀ · outputGradient[n])`, for each image `n`.
    func backwardData(outputGradient: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      inputGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let g = geometry
        switch backwardDataPath {
        case .winograd:
            return backwardDataWinograd.run(input: outputGradient, output: inputGradient, bias: nil, workspace: workspace!,
                                            kernel: .backwardData(weight))
        case .rotated(let rotated):
            let rotatedWeight = workspace!
            rotateKernels(weight, into: rotatedWeight)
            return rotated.forward(input: outputGradient, weight: rotatedWeight, bias: nil, output: inputGradient,
                                   workspace: rotatedWeight + rotatedWeightFloats)
        case .pointwise(let pointwise):
            return pointwise.backwardData(outputGradient: outputGradient, weight: weight, inputGradient: inputGradient)
        case .phases(let phases):
            return phases.backwardData(outputGradient: outputGradient, weight: weight, inputGradient: inputGradient,
                                       workspace: workspace!)
        case .columns:
            break
        }
        let blocking = blocking
        forEachImageRun(workspace: workspace, imageByImage: true) { images, slice, alone in
            blocking.forEachBlock(of: images) { block, rows in
                let gradient = filterSideOf(outputGradient, images: block, rows: rows, into: slice.staging)
                let bandStart = rows.lowerBound * g.outputWidth
                if isPointwise && block.count == 1 {
                    // The column matrix is the image, so GEMM writes the gradient in place.
                    backend.multiply(splittingAcrossCores: alone, transposeA: true, transposeB: false,
                                     m: g.columnRows, n: rows.count * g.outputWidth, k: filters,
                                     alpha: 1, a: weight, lda: g.columnRows,
                                     b: gradient.base, ldb: gradient.leadingDimension,
                                     beta: 0, c: inputGradient + block.lowerBound * g.imageSize + bandStart, ldc: g.outputPlaneSize)
                    return
                }
                let width = block.count * rows.count * g.outputWidth
                let columns = slice.columns!
                backend.multiply(splittingAcrossCores: alone, transposeA: true, transposeB: false,
                                 m: g.columnRows, n: width, k: filters,
                                 alpha: 1, a: weight, lda: g.columnRows, b: gradient.base, ldb: gradient.leadingDimension,
                                 beta: 0, c: columns, ldc: width)
                for (index, image) in block.enumerated() {
                    let destination = inputGradient + image * g.imageSize
                    let imageColumns = columns + index * rows.count * g.outputWidth
                    if isPointwise {
                        VectorOperations.copyMatrix(rows: g.channels, columns: g.outputPlaneSize,
                                                    from: imageColumns, sourceStride: width,
                                                    to: destination, destinationStride: g.outputPlaneSize)
                        continue
                    }
                    if rows.lowerBound == 0 { destination.update(repeating: 0, count: g.imageSize) }
                    col2im(columns: imageColumns, geometry: g, image: destination,
                           outputRows: rows, leadingDimension: width, parallel: alone)
                }
            }
        }
    }

    /// `rotated[c][f][kh][kw] = weight[f][c][KH − 1 − kh][KW − 1 − kw]`: the kernel of the
    /// backward-data pass as a forward convolution.
    private func rotateKernels(_ weight: UnsafePointer<Float>, into rotated: UnsafeMutablePointer<Float>) {
        let g = geometry
        let taps = g.kernel.height * g.kernel.width
        for filter in 0..<filters {
            for channel in 0..<g.channels {
                let source = weight + (filter * g.channels + channel) * taps
                let destination = rotated + (channel * filters + filter) * taps
                for tap in 0..<taps { destination[tap] = source[taps - 1 - tap] }
            }
        }
    }

    /// Whether the GEMM weight gradient gives each thread its own run of images (and partial
    /// sum, added up at the end) rather than splitting each GEMM across cores: not when an
    /// image has fewer than 64 output positions, where each thread's partial (the size of the
    /// weight) costs about as much to write and add up as the products it holds. Two threads,
    /// minima of 6 alternating runs: 8×512×7×7 → 2048 1×1 5.32 → 4.93 ms, 8×2048×7×7 → 512
    /// 4.15 → 3.79, 8×256×14×14 → 512 3×3 stride 2 7.00 → 7.02.
    var weightGradientSplitsBatch: Bool { geometry.outputPlaneSize >= 64 }

    /// `weightGradient = Σₙ outputGradient[n] · im2col(input[n])ᵀ`, accumulated by GEMM with
    /// beta = 1 after each thread's first block.
    func backwardWeight(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let g = geometry
        guard g.batch > 0 else {
            weightGradient.update(repeating: 0, count: filters * g.columnRows)
            return
        }
        switch weightGradientPath {
        case .winograd:
            return forwardWinograd.weightGradient(input: input, outputGradient: outputGradient,
                                                  weightGradient: weightGradient, workspace: workspace!)
        case .largeWinograd(let winograd):
            return winograd.weightGradient(input: input, outputGradient: outputGradient,
                                           weightGradient: weightGradient, workspace: workspace!)
        case .dilatedWinograd(let dilated):
            return dilated.weightGradient(input: input, outputGradient: outputGradient,
                                          weightGradient: weightGradient, workspace: workspace!)
        case .channelLast(let channelLast):
            return channelLast.run(input: input, outputGradient: outputGradient, weightGradient: weightGradient, workspace: workspace!)
        case .direct(let direct):
            return direct.weightGradient(input: input, outputGradient: outputGradient,
                                         weightGradient: weightGradient, workspace: workspace!)
        case .pointwise(let pointwise):
            return pointwise.run(input: input, outputGradient: outputGradient, weightGradient: weightGradient, workspace: workspace!)
        case .implicit(let implicit):
            return implicit.weightGradient(input: input, outputGradient: outputGradient,
                                           weightGradient: weightGradient, workspace: workspace!)
        case .columns:
            break
        }
        let blocking = blocking
        let splitsBatch = weightGradientSplitsBatch
        // Several threads each accumulate a partial sum in their slice, added up at the end.
        forEachImageRun(workspace: workspace, imageByImage: false, splitsBatch: splitsBatch) { images, slice, alone in
            let target = alone ? weightGradient : slice.partialWeightGradient ?? weightGradient
            var isFirstBlock = true
            blocking.forEachBlock(of: images) { block, rows in
                let columns = columnsOf(input, images: block, rows: rows, into: slice.columns, parallel: alone)
                let gradient = filterSideOf(outputGradient, images: block, rows: rows, into: slice.staging)
                backend.multiply(splittingAcrossCores: alone, transposeA: false, transposeB: true,
                                 m: filters, n: g.columnRows, k: block.count * rows.count * g.outputWidth,
                                 alpha: 1, a: gradient.base, lda: gradient.leadingDimension,
                                 b: columns.base, ldb: columns.leadingDimension,
                                 beta: isFirstBlock ? 0 : 1, c: target, ldc: g.columnRows)
                isFirstBlock = false
            }
        }
        guard imageWorkers > 1, splitsBatch, let workspace else { return }
        // In chunk order, so the sum is the same on every run.
        PartialSums.add((0..<imageWorkers).map { UnsafePointer(slice(at: workspace + $0 * sliceCount).partialWeightGradient!) },
                        count: filters * g.columnRows, into: weightGradient)
    }

    /// Per-channel sums of an NCHW buffer: the bias gradient of any layer.
    /// Channels are split across cores, each sum still taken in the same order.
    static func channelSums(_ tensor: UnsafePointer<Float>, batch: Int, channels: Int, planeSize: Int,
                            into sums: UnsafeMutablePointer<Float>) {
        Parallel.forEach(channels, workPerItem: batch * planeSize) { range in
            for channel in range {
                var total = 0.0
                for image in 0..<batch {
                    total += VectorOperations.sum(tensor + (image * channels + channel) * planeSize, count: planeSize)
                }
                sums[channel] = Float(total)
            }
        }
    }

    /// A matrix operand: its first element and the distance between its rows.
    private struct Operand {
        let base: UnsafePointer<Float>
        let leadingDimension: Int
    }

    /// The column matrix of a block (`columnRows × width`): the image itself for a pointwise
    /// band, else im2col of each image (or a copy of it, pointwise) side by side in `buffer`.
    private func columnsOf(_ input: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>,
                           into buffer: UnsafeMutablePointer<Float>?, parallel: Bool) -> Operand {
        let g = geometry
        let bandWidth = rows.count * g.outputWidth
        if isPointwise && images.count == 1 {
            return Operand(base: input + images.lowerBound * g.imageSize + rows.lowerBound * g.outputWidth,
                           leadingDimension: g.outputPlaneSize)
        }
        let width = images.count * bandWidth
        for (index, image) in images.enumerated() {
            let source = input + image * g.imageSize
            let destination = buffer! + index * bandWidth
            if isPointwise {
                VectorOperations.copyMatrix(rows: g.channels, columns: g.outputPlaneSize, from: source, sourceStride: g.outputPlaneSize,
                                            to: destination, destinationStride: width)
            } else {
                im2col(image: source, geometry: g, columns: destination, outputRows: rows, leadingDimension: width, parallel: parallel)
            }
        }
        return Operand(base: buffer!, leadingDimension: width)
    }

    /// The filter side of a block (`filters × width`): read in place for one image, copied side
    /// by side into `staging` for several.
    private func filterSideOf(_ filterSide: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>,
                              into staging: UnsafeMutablePointer<Float>?) -> Operand {
        let g = geometry
        guard images.count > 1 else {
            return Operand(base: filterSide + images.lowerBound * outputImageSize + rows.lowerBound * g.outputWidth,
                           leadingDimension: g.outputPlaneSize)
        }
        let width = images.count * g.outputPlaneSize
        for (index, image) in images.enumerated() {
            VectorOperations.copyMatrix(rows: filters, columns: g.outputPlaneSize,
                                        from: filterSide + image * outputImageSize, sourceStride: g.outputPlaneSize,
                                        to: staging! + index * g.outputPlaneSize, destinationStride: width)
        }
        return Operand(base: staging!, leadingDimension: width)
    }
}

extension ConvolutionEngine {
    /// Overflow and BLAS-index checks for the filter side of a convolution.
    static func validateFilterSide(geometry g: ConvGeometry, filters: Int) throws {
        try CheckedArithmetic.requireBLASIndex(filters, argument: "weight", describing: "the filter count")
        _ = try CheckedArithmetic.product(filters, g.columnRows, argument: "weight", describing: "the weight's element count")
        let outputImage = try CheckedArithmetic.product(filters, g.outputPlaneSize, argument: "input", describing: "one output image")
        _ = try CheckedArithmetic.product(g.batch, outputImage, MemoryLayout<Float>.stride,
                                          argument: "input", describing: "the output's byte size")
    }
}

/// Tensor-level passes: allocate the result, run the raw pass, wrap it. The layers pick which
/// pass plays which role.
extension ConvolutionEngine {
    /// The image side `col2im(weightᵀ · filterSide)` plus an optional per-channel bias, shaped
    /// like the image side: the convolution's input gradient, the transposed convolution's output.
    func imageSide(_ filterSide: Tensor, weight: Tensor, channelBias: Tensor? = nil,
                   workspace: UnsafeMutablePointer<Float>?) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: g.batch * g.imageSize) { destination in
            filterSide.withPointer { filterSide in
                weight.withPointer { weight in
                    backwardData(outputGradient: filterSide, weight: weight, inputGradient: destination, workspace: workspace)
                }
            }
            guard let channelBias else { return }
            for image in 0..<g.batch {
                for channel in 0..<g.channels {
                    VectorOperations.add(channelBias.scalars[channel], into: destination + image * g.imageSize + channel * g.inputPlaneSize,
                                         count: g.inputPlaneSize)
                }
            }
        }
        return Tensor(validatedShape: [g.batch, g.channels, g.height, g.width], scalars: scalars)
    }

    /// `Σₙ filterSide[n] · im2col(imageSide[n])ᵀ`, shaped `[filters, channels, KH, KW]`.
    func weightGradient(filterSide: Tensor, imageSide: Tensor, workspace: UnsafeMutablePointer<Float>?) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: filters * g.columnRows) { destination in
            guard g.batch > 0 else {
                destination.update(repeating: 0, count: filters * g.columnRows)
                return
            }
            imageSide.withPointer { imageSide in
                filterSide.withPointer { filterSide in
                    backwardWeight(input: imageSide, outputGradient: filterSide, weightGradient: destination, workspace: workspace)
                }
            }
        }
        return Tensor(validatedShape: [filters, g.channels, g.kernel.height, g.kernel.width], scalars: scalars)
    }

    /// Per-filter sums of the filter side, `[filters]`.
    func filterSideChannelSums(_ filterSide: Tensor) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: filters) { destination in
            guard g.batch > 0 else {
                destination.update(repeating: 0, count: filters)
                return
            }
            filterSide.withPointer { filterSide in
                ConvolutionEngine.channelSums(filterSide, batch: g.batch, channels: filters,
                                              planeSize: g.outputPlaneSize, into: destination)
            }
        }
        return Tensor(validatedShape: [filters], scalars: scalars)
    }

    /// Per-channel sums of the image side, `[channels]`: the transposed convolution's bias gradient.
    func imageSideChannelSums(_ imageSide: Tensor) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: g.channels) { destination in
            guard g.batch > 0 else {
                destination.update(repeating: 0, count: g.channels)
                return
            }
            imageSide.withPointer { imageSide in
                ConvolutionEngine.channelSums(imageSide, batch: g.batch, channels: g.channels,
                                              planeSize: g.inputPlaneSize, into: destination)
            }
        }
        return Tensor(validatedShape: [g.channels], scalars: scalars)
    }

    /// `weight · im2col(imageSide) (+ bias)`, shaped `[batch, filters, OH, OW]`.
    func filterSide(_ imageSide: Tensor, weight: Tensor, bias: Tensor?, workspace: UnsafeMutablePointer<Float>?) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: g.batch * outputImageSize) { destination in
            guard g.batch > 0 else { return }
            imageSide.withPointer { imageSide in
                weight.withPointer { weight in
                    bias.withPointer { bias in
                        forward(input: imageSide, weight: weight, bias: bias, output: destination, workspace: workspace)
                    }
                }
            }
        }
        return Tensor(validatedShape: [g.batch, filters, g.outputHeight, g.outputWidth], scalars: scalars)
    }
}
