import KernelsSIMD

/// Convolution without im2col or GEMM (forward and weight gradient), for layers with few input
/// channels (an RGB stem, MNIST's one channel) and for large stride-1 kernels with few filters:
/// an AVX2 + FMA micro-kernel computes 6 filters × 16 output columns at a time (12 accumulator
/// registers), loading each input vector once for all six filters; on AVX-512 CPUs its build
/// with 16-lane vectors computes 6 filters × up to 64 columns (see ``InstructionSet``).
///
/// Why: with `C·KH·KW` of 25 or 27, OpenBLAS's sgemm spends most of its time packing and
/// storing (the product has only 25 multiply-adds per output), and im2col writes 25 copies of
/// the image first; a 5×5 or 7×7 kernel makes im2col write the image 25 or 49 times over. The
/// shapes where it wins were measured (see ``applies(to:filters:backend:)``).
///
/// Each image is first copied into a zero-padded buffer whose rows are split by column phase
/// (`x mod stride`), so for every kernel tap, consecutive output columns read consecutive
/// floats whatever the stride or dilation, and no tap needs a bounds check.
///
/// The weight gradient uses the same padded layout, with the sum over output positions in
/// registers: 6 filters × 2 taps (4 with AVX-512) per sweep over a band of the output gradient.
/// (Its first version was slower than GEMM: a lane mask held across the inner loop made 16 live
/// YMM registers and clang spilled; with the masked tail moved out of the loop it is faster.)
/// On AVX-512 CPUs, layers with 128+ taps sum by filters instead (see ``sumsByFilters``).
///
/// Used only where the CPU has AVX2 and FMA (checked at run time; the micro-kernels are compiled
/// for them, and for AVX-512, with function attributes) and the backend is OpenBLAS: the
/// pure-Swift backends keep their whole pipeline in Swift.
///
/// - Complexity: O(N · F · C·KH·KW · OH·OW) multiply-adds, plus one padded copy per image.
struct DirectConvolution {
    let geometry: ConvGeometry
    let filters: Int
    /// Which build of the micro-kernels runs (the widest this CPU has, unless a test asks).
    var instructionSet: InstructionSet = .widest

    /// The vector instructions a micro-kernel is compiled for.
    enum InstructionSet: CaseIterable, Sendable {
        /// 8 lanes: 6 filters × 16 columns per block.
        case avx2
        /// 16 lanes and 32 registers: 6 filters × up to 64 columns per block. Measured on an
        /// Intel Xeon (family 6, model 207) against the AVX2 build, minimum of 3 alternating
        /// runs: forward 8×32×64×64 → 32 5×5 13.1 → 8.1 ms, 8×16×64×64 → 16 7×7 5.5 → 3.5 ms,
        /// the 7×7 stem 12.6 → 10.4 ms, 64×3×32×32 → 16 0.44 → 0.31 ms (with 32-column
        /// blocks; 64-column blocks then took the medians of 6 runs from 11.6 to 9.5, 5.7 to
        /// 4.6 and, with 64 filters, 21.6 to 18.1 ms); weight gradient (medians of 4) 5×5
        /// 19.4 → 15.7 ms, 7×7 8.6 → 6.7 ms, stem 21.1 → 17.9 ms.
        case avx512

        /// Whether this CPU and OS run it (read once).
        var isSupported: Bool {
            switch self {
            case .avx2: DirectConvolution.isSupported
            case .avx512: DirectConvolution.hasAVX512
            }
        }

        /// The widest this CPU runs (`.avx2` where neither runs: nothing calls it then).
        static let widest: InstructionSet = DirectConvolution.hasAVX512 ? .avx512 : .avx2
    }

    /// Whether this CPU and OS run the AVX2 + FMA micro-kernel (read once).
    static let isSupported: Bool = kernels_simd_has_avx2_fma()
    private static let hasAVX512: Bool = kernels_simd_has_avx512f()

    /// Most input channels of a "few channels" layer: 4; on AVX2-only CPUs 8, and 16 at stride 1.
    /// There the GEMM's inner dimension of 72–144 is still too short for OpenBLAS: on a 2-core AMD
    /// EPYC (Zen 3), call-by-call pairs' median ratios, direct ÷ im2col + OpenBLAS, forward and
    /// weight gradient: 16×8×28×28 → 8 3×3 0.54, 0.69 (backward-data, direct on the rotated
    /// kernels, 0.42); 8×8×32×32 → 64 0.79, 0.86; 8×8×56×56 → 16 0.62, 0.63; 8×6×64×64 → 32 0.74,
    /// 0.74; 8×12×32×32 → 32 0.70, 0.79; 8×12×56×56 → 64 0.82, 0.87; 8×16×32×32 → 4 0.38, 0.40;
    /// stride 2, 16×8×32×32 → 32 0.83, 0.85. Not 16 channels at stride 2: 8×16×64×64 → 32 forward
    /// 0.86 but weight gradient 1.04, 8×16×112×112 → 64 1.00 and 1.17. Not measured on AVX-512.
    static func maximumFewChannels(stride: Size2D) -> Int {
        guard InstructionSet.widest == .avx2 else { return 4 }
        return stride == 1 ? 16 : 8
    }

    /// Whether the direct kernel beats im2col + OpenBLAS on this layer (its forward pass and
    /// weight gradient; the engine asks again for the backward-data pass's rotated geometry).
    /// Forward passes measured on a 2-core AMD EPYC (minimum of 4 alternating runs each,
    /// `Benchmarks/README.md`):
    /// - ≤ 4 input channels (see ``maximumFewChannels(stride:)``; ≤ 160 taps), any stride:
    ///   sgemm's inner dimension of 25–147 is too
    ///   short for it (dlfs 100×1×28×28 → 30 5×5: 1.41 → 0.61 ms; 64×3×32×32 → 16 3×3:
    ///   0.73 → 0.43 ms; 8×3×224×224 → 64 7×7 stride 2: 11.4 → 10.5 ms).
    /// - stride 1, a 5×5 or larger kernel, 8–64 filters, ≤ 1024 taps: im2col would write the
    ///   image 25+ times over and sgemm has few rows (8×32×64×64 → 32 5×5: 12.9 → 10.0 ms;
    ///   → 64: 22.1 → 18.3 ms; 8×16×64×64 → 16 7×7: 8.4 → 5.9 ms).
    /// Not chosen: 3×3 stride 2 with 32–128 channels, where sgemm runs at 150+ GFLOP/s
    /// (8×64×56×56 → 128: 5.75 → 7.45 ms direct). On AVX2-only CPUs the channel-last kernel
    /// goes ahead of this one for layers with 48+ channels or a 7×7+ kernel and 32+ channels and
    /// filters (see ``ChannelLastConvolution/precedesDirect(_:)``).
    static func applies(to g: ConvGeometry, filters: Int, backend: GEMMBackend) -> Bool {
        guard backend == .openBLAS, isSupported, g.stride.width <= maximumStride else { return false }
        // 1×1 layers (a plain GEMM over the image in place) were not measured past 4 channels.
        let fewChannels = g.channels <= (g.kernel == 1 ? 4 : maximumFewChannels(stride: g.stride)) && g.columnRows <= 160
        let largeStrideOneKernel = g.stride == 1 && g.kernel.height * g.kernel.width >= 25
            && (8...64).contains(filters) && g.columnRows <= 1024
        guard fewChannels || largeStrideOneKernel else { return false }
        // The padded copy is about (H + 2p)·(W + 2p) per channel: with padding far beyond the
        // image it could dwarf the image (or overflow), so such layers stay on im2col.
        let direct = DirectConvolution(geometry: g, filters: filters)
        return CheckedArithmetic.product(direct.paddedHeight, direct.rowStride, g.channels,
                                         isAtMost: CheckedArithmetic.maximumImageCopyFloats)
    }

    /// Column phases a padded row is split into at most (one per stride step).
    static let maximumStride = 8

    private var filterBlock: Int { Int(KERNELS_DIRECT_FILTER_BLOCK) }
    private var filterBlocks: Int { (filters + filterBlock - 1) / filterBlock }

    /// Padded input rows and columns the outputs actually read (trailing padding that no window
    /// reaches is left out).
    private var paddedHeight: Int {
        let g = geometry
        return (g.outputHeight - 1) * g.stride.height + (g.kernel.height - 1) * g.dilation.height + 1
    }
    private var paddedWidth: Int {
        let g = geometry
        return (g.outputWidth - 1) * g.stride.width + (g.kernel.width - 1) * g.dilation.width + 1
    }

    /// Floats of one column phase of a padded row: its pixels plus the kernel's overrun room.
    private var phaseLength: Int {
        (paddedWidth + geometry.stride.width - 1) / geometry.stride.width + Int(KERNELS_DIRECT_ROW_SLACK)
    }
    private var rowStride: Int { geometry.stride.width * phaseLength }
    private var planeStride: Int { paddedHeight * rowStride }
    private var paddedImageCount: Int { geometry.channels * planeStride }
    private var packedWeightCount: Int { filterBlocks * geometry.columnRows * filterBlock }

    /// Threads that each take a run of whole images (each with its own padded copy); with
    /// fewer images than cores, one copy at a time and the rows split across cores instead.
    private var imageWorkers: Int {
        geometry.imageWorkers(filters: filters)
    }

    /// Floats of workspace for ``forward(input:weight:bias:output:workspace:)``: the packed
    /// weights and one padded image per thread.
    var workspaceCount: Int { packedWeightCount + max(1, imageWorkers) * paddedImageCount }

    /// Floats of workspace for ``weightGradient(input:outputGradient:weightGradient:workspace:)``:
    /// one padded image and one partial weight gradient per thread.
    var weightGradientWorkspaceCount: Int {
        max(1, imageWorkers) * (paddedImageCount + filters * geometry.columnRows + byFiltersScratchCount)
    }

    /// Whether each thread's images go through the weight-gradient kernel vectorized over filters
    /// (AVX-512 only): it transposes each image's output gradient first, which pays off only
    /// with many taps to spread it over. Medians of 4 alternating runs on the AVX-512 Xeon
    /// against the position-vectorized kernel: 8×32×64×64 → 32 5×5 10.8 → 9.0 ms, → 64
    /// 21.5 → 15.8 ms, the 7×7 stem (147 taps) 14.0 → 13.1 ms; but 64×3×32×32 → 16 3×3
    /// (27 taps) 0.58 → 1.13 ms, hence the 128-tap floor.
    private var sumsByFilters: Bool { instructionSet == .avx512 && imageWorkers > 1 && geometry.columnRows >= 128 }

    /// Floats of that kernel's scratch: the transposed output gradient and the transposed sums.
    private var byFiltersScratchCount: Int {
        guard sumsByFilters else { return 0 }
        return kernels_direct_weight_gradient_by_filters_scratch_count(filters, geometry.outputPlaneSize, geometry.columnRows)
    }

    /// `output[n] = conv(input[n], weight) + bias` for every image; `workspace` holds
    /// ``workspaceCount`` floats.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let packedWeights = workspace
        packWeights(weight, into: packedWeights)
        let paddedImages = workspace + packedWeightCount
        let taps = tapOffsets()
        let outputImageSize = filters * g.outputPlaneSize
        taps.withUnsafeBufferPointer { taps in
            func convolve(_ padded: UnsafePointer<Float>, image: Int, rows: Range<Int>) {
                let kernel = instructionSet == .avx512 ? kernels_direct_convolution_avx512 : kernels_direct_convolution_avx2
                kernel(padded, rowStride, g.stride.height, taps.baseAddress!, taps.count,
                       packedWeights, bias, filters, output + image * outputImageSize,
                       g.outputHeight, g.outputWidth, rows.lowerBound, rows.upperBound)
            }
            if imageWorkers > 1 {
                Parallel.forEachDynamic(g.batch, workPerItem: g.imageWork(filters: filters)) { worker, image in
                    let padded = paddedImages + worker * paddedImageCount
                    pad(input + image * g.imageSize, into: padded)
                    convolve(padded, image: image, rows: 0..<g.outputHeight)
                }
            } else {
                for image in 0..<g.batch {
                    pad(input + image * g.imageSize, into: paddedImages)
                    Parallel.forEach(g.outputHeight, workPerItem: filters * g.columnRows * g.outputWidth) { rows in
                        convolve(paddedImages, image: image, rows: rows)
                    }
                }
            }
        }
    }

    /// `weightGradient[f][c][kh][kw] = Σₙ Σ_{oh,ow} outputGradient[n][f][oh][ow] · input[n][c][oh·s + kh·d − p][ow·s + kw·d − p]`
    /// (zero in the padding), from the same padded layout: 6 filters × 2 or 4 taps per sweep over
    /// a band of the output gradient, summed in registers (or, see ``sumsByFilters``, a vector of
    /// filters per tap). `weightGradient` is overwritten;
    /// `workspace` holds ``weightGradientWorkspaceCount`` floats.
    func weightGradient(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let weightCount = filters * g.columnRows
        let outputImageSize = filters * g.outputPlaneSize
        let taps = tapOffsets()
        taps.withUnsafeBufferPointer { taps in
            func accumulate(_ padded: UnsafePointer<Float>, image: Int, taps range: Range<Int>, into gradient: UnsafeMutablePointer<Float>) {
                let kernel = instructionSet == .avx512 ? kernels_direct_weight_gradient_avx512 : kernels_direct_weight_gradient_avx2
                kernel(padded, rowStride, g.stride.height, taps.baseAddress!, taps.count,
                       range.lowerBound, range.upperBound, outputGradient + image * outputImageSize, filters,
                       g.outputHeight, g.outputWidth, gradient)
            }
            guard imageWorkers > 1 else {
                // One image at a time, its taps split across cores in pairs (as the kernel sweeps them).
                weightGradient.update(repeating: 0, count: weightCount)
                for image in 0..<g.batch {
                    pad(input + image * g.imageSize, into: workspace)
                    let pairs = (g.columnRows + 1) / 2
                    Parallel.forEach(pairs, workPerItem: 2 * filters * g.outputPlaneSize) { pairRange in
                        let range = (2 * pairRange.lowerBound)..<min(g.columnRows, 2 * pairRange.upperBound)
                        accumulate(workspace, image: image, taps: range, into: weightGradient)
                    }
                }
                return
            }
            // Each thread sums its run of images into its own partial; the partials are added in
            // chunk order, so the result is the same on every run.
            let sliceCount = paddedImageCount + weightCount + byFiltersScratchCount
            Parallel.forEachChunk(g.batch, workPerItem: g.imageWork(filters: filters)) { chunk, images in
                let padded = workspace + chunk * sliceCount
                let partial = padded + paddedImageCount
                let scratch = partial + weightCount
                partial.update(repeating: 0, count: weightCount)
                for image in images {
                    pad(input + image * g.imageSize, into: padded)
                    guard sumsByFilters else {
                        accumulate(padded, image: image, taps: 0..<g.columnRows, into: partial)
                        continue
                    }
                    kernels_direct_weight_gradient_by_filters_avx512(
                        padded, rowStride, g.stride.height, taps.baseAddress!, taps.count,
                        outputGradient + image * outputImageSize, filters, g.outputHeight, g.outputWidth,
                        scratch, partial)
                }
            }
            PartialSums.add((0..<imageWorkers).map { UnsafePointer(workspace + $0 * sliceCount + paddedImageCount) },
                            count: weightCount, into: weightGradient)
        }
    }

    /// `packed[block][tap][f] = weight[block·6 + f][tap]`, zero for filters past the last: the
    /// four weights one input vector meets are adjacent.
    private func packWeights(_ weight: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        let taps = geometry.columnRows
        packed.update(repeating: 0, count: packedWeightCount)
        for filter in 0..<filters {
            let (block, lane) = filter.quotientAndRemainder(dividingBy: filterBlock)
            let destination = packed + block * taps * filterBlock + lane
            let source = weight + filter * taps
            for tap in 0..<taps { destination[tap * filterBlock] = source[tap] }
        }
    }

    /// For each tap `(c, kh, kw)` in weight order, the offset in the padded image of the input
    /// that output `(0, 0)` reads; output `(oh, ow)` reads it plus `oh·strideH·rowStride + ow`.
    private func tapOffsets() -> [Int] {
        let g = geometry
        var offsets: [Int] = []
        offsets.reserveCapacity(g.columnRows)
        for channel in 0..<g.channels {
            for kh in 0..<g.kernel.height {
                for kw in 0..<g.kernel.width {
                    let (column, phase) = (kw * g.dilation.width).quotientAndRemainder(dividingBy: g.stride.width)
                    offsets.append(channel * planeStride + kh * g.dilation.height * rowStride + phase * phaseLength + column)
                }
            }
        }
        return offsets
    }

    /// Copies one image into the zero-padded, phase-split layout (see the type's summary):
    /// padded pixel `(c, y, x)` goes to `c·planeStride + y·rowStride + (x mod s)·phaseLength + x / s`.
    private func pad(_ image: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (stride, phaseLength, rowStride, paddedWidth) = (g.stride.width, phaseLength, rowStride, paddedWidth)
        for channel in 0..<g.channels {
            let plane = image + channel * g.inputPlaneSize
            for y in 0..<paddedHeight {
                let row = padded + channel * planeStride + y * rowStride
                let inputRow = y - g.padding.height
                guard (0..<g.height).contains(inputRow) else {
                    row.update(repeating: 0, count: rowStride)
                    continue
                }
                let source = plane + inputRow * g.width
                for phase in 0..<stride {
                    // Phase index i holds padded column i·s + phase, the input pixel i·s + phase − pW.
                    let destination = row + phase * phaseLength
                    let used = max(0, (paddedWidth - phase + stride - 1) / stride)
                    let valid = validOutputRange(outputLength: used, stride: stride, offset: phase - g.padding.width,
                                                 inputLength: g.width)
                    destination.update(repeating: 0, count: valid.lowerBound)
                    let first = source + valid.lowerBound * stride + phase - g.padding.width
                    if stride == 1 {
                        (destination + valid.lowerBound).update(from: first, count: valid.count)
                    } else if stride == 2 {
                        VectorOperations.copyEvenElements(first, to: destination + valid.lowerBound, count: valid.count)
                    } else {
                        for index in 0..<valid.count { destination[valid.lowerBound + index] = first[index * stride] }
                    }
                    (destination + valid.upperBound).update(repeating: 0, count: phaseLength - valid.upperBound)
                }
            }
        }
    }
}
