import KernelsSIMD

/// The forward pass as one product per image over a phase-split copy of the image, without
/// im2col: for strided layers on AVX-512 CPUs that the channel-last convolution leaves (fewer
/// than 64 channels or filters), where im2col's strided gathers took a
/// sixth of the pass (resnet-c3s2 forward 4.05 → 3.75 ms, minimum of 6 alternating runs, before
/// the channel-last convolution took it), and for stride-1 layers with a small weight (see ``pays``).
///
/// The copy holds each channel zero-padded and split by row and column phase (`y mod s`,
/// `x mod s`), each phase plane `phaseRows × phaseLength`, `phaseLength = OW + ((KW − 1)·d)/s`.
/// Output `(oh, ow)` then reads, for tap `(c, kh, kw)`, the float at
/// `tapOffset(c, kh, kw) + oh·phaseLength + ow`: seen as a flat column index
/// `j = oh·phaseLength + ow`, every tap's inputs form one contiguous row of a matrix `B` whose
/// rows start at the tap offsets and overlap. ``ProductKernel`` multiplies the weight by it
/// directly (`(OH − 1)·phaseLength + OW` columns), computing `phaseLength − OW` throw-away
/// columns per output row (1 of 29 for resnet-c3s2), which the copy-out to NCHW drops.
///
/// The weight gradient reads the same copy: for tap `(kh, kw)`, `dW[f][c, kh, kw] = Σ_j
/// copy[tapOffset(c, kh, kw) + j] · dY[f][j]`, and `tapOffset(c, kh, kw)` is channel 0's offset
/// plus `c · channelStride`, so the copy's rows for one tap are a plain matrix (`C × columns`,
/// rows `channelStride` apart) that ``ProductKernel`` reads in place as `A`, times the output
/// gradient transposed to `[j][F]` as `B`: `KH·KW` products of `C × F` per image, without
/// im2col's columns or OpenBLAS's packing of them (resnet-c3s2 backward-weight 4.44 → 3.90 ms,
/// minima of 6 alternating runs; 9.0 → 7.4 ms on one thread).
///
/// Tried and not kept: the backward-data pass by output phases (each phase of the image a
/// stride-1 correlation of the padded output gradient with that phase's taps, one product per
/// phase, no col2im): resnet-c3s2 3.9 → 4.1 ms, the product kernel reaching about 260 GFLOP/s
/// there against OpenBLAS's 355 on the GEMM it replaces, more than col2im's quarter of the pass.
/// The backward-data pass as one product per tap added into a copy of the image's gradient
/// (`A` the weight transposed, `B` the output gradient at the flat columns), then merged back:
/// 8.3 → 9.1 ms on one thread, the product reaching 126 GFLOP/s when each 128-deep pass loads
/// and stores its block of `C` in L2. The forward product storing its rows straight into the
/// output (lanes of throw-away columns compressed out, expanded back for later passes) instead
/// of a staging copy: 3.67 → 4.03 ms, minima of 6 alternating runs (every pass then stores
/// into the caller's cold output, not the thread's L2-resident staging); with only the last
/// pass storing into the output and the others into the staging, no faster than the copy-out
/// (7.51 → 7.75 ms on one thread). Layers below ``minimumColumns`` multiplied several images at
/// a time (their phase planes side by side in one copy, one product of 512+ columns): slower,
/// 8×128×28×28 → 256 forward 6.34 → 6.60 ms and 8×256×14×14 → 512 6.5 → 8.4 (2 threads, minima
/// of 4 alternating runs), the copies and product of a group no longer fitting in L2 beside a
/// weight of 1.2–4.7 MB; the same layers image by image, with the product kernel sweeping
/// 512 KiB of `A` over all column blocks at a time: 11.4 → 11.6 and 9.4 → 12.0 ms on one thread.
///
/// - Complexity: O(N · F · C·KH·KW · OH·phaseLength) multiply-adds, plus one copy per image in
///   and one per output out.
struct ImplicitConvolution {
    let geometry: ConvGeometry
    let filters: Int
    let product: ProductKernel

    /// Largest stride on either axis (the copy has stride² phase planes per channel).
    static let maximumStride = 4
    /// Fewest columns of one image's product: below, the kernel's blocks run narrow and a
    /// whole product per image is too little work, and im2col's grouped images do better
    /// (forward, minima of 1.5 s runs: 8×256×7×7 → 256 3×3 stride 2, 19 columns, 0.93 → 1.55
    /// ms; 8×256×14×14 → 512, 55 columns, 5.6 → 7.3; 8×128×28×28 → 256, 209 columns, 4.34 →
    /// 4.57; but 16×32×32×32 → 64, 271 columns, 1.44 → 1.04).
    static let minimumColumns = 256

    /// Largest partial weight gradient (`C·KH·KW × F` floats, 512 KiB) for which the weight
    /// gradient runs here: each image's products are added into it, so it has to stay in L2
    /// (8×128×28×28 → 256 3×3 stride 2, 1.2 MB: 5.9 → 7.2 ms).
    static let maximumPartialFloats = 1 << 17

    /// Whether the weight gradient runs here too: the forward pass does, and the partial sum
    /// is at most ``maximumPartialFloats``.
    var weightGradientPays: Bool {
        pays && CheckedArithmetic.product(geometry.columnRows, filters, isAtMost: Self.maximumPartialFloats)
    }

    /// Whether the forward pass of this layer pays to run here: a kernel larger than 1×1 (a
    /// strided 1×1 only needs one of its phases), a product of ``minimumColumns`` or more, a
    /// copy that fits, and either a stride above 1 or a weight of at most
    /// ``maximumStrideOneWeightFloats``.
    ///
    /// At stride 1 (layers neither Winograd nor the direct kernel takes) the product reads the
    /// weight once per 64 columns, so it has to stay in L2; where it does, im2col + OpenBLAS
    /// loses more to packing a column matrix that few filters use than the product loses to its
    /// `phaseLength − OW` throw-away columns per output row. Forward, minima of 3 alternating
    /// runs, 2 threads: 8×64×28×28 → 64 7×7 14.0 → 10.3 ms, 8×64×32×32 → 8 3×3 2.05 → 0.56,
    /// 8×64×32×32 → 128 5×5 20.5 → 15.3, 8×32×56×56 → 96 5×5 19.3 → 14.2, one image
    /// 1×64×56×56 → 64 7×7 7.8 → 5.2, 8×8×64×64 → 128 3×3 3.9 → 3.7; but with a weight past L2,
    /// 8×96×27×27 → 256 5×5 (2.4 MB) 36.3 → 45.4 and 8×128×28×28 → 128 7×7 (3.2 MB) 55.2 → 57.8.
    var pays: Bool {
        let g = geometry
        guard g.kernel.height * g.kernel.width > 1,
              g.stride.height <= Self.maximumStride, g.stride.width <= Self.maximumStride else { return false }
        if g.stride == 1, !CheckedArithmetic.product(filters, g.columnRows, isAtMost: Self.maximumStrideOneWeightFloats) {
            return false
        }
        return fitsInWorkspace && productColumns >= Self.minimumColumns
    }

    /// Largest weight (`F × C·KH·KW` floats, 1 MiB) of a stride-1 layer whose forward pass runs
    /// here (see ``pays``).
    static let maximumStrideOneWeightFloats = 1 << 18

    /// Input rows the copy asks for ahead of the one it reads (3 KiB at a width of 56).
    static let prefetchRows = 12

    /// Whether one image's copy and product stay within ``CheckedArithmetic/maximumImageCopyFloats``
    /// each (padding far beyond the image could make them huge, or overflow).
    var fitsInWorkspace: Bool {
        let g = geometry
        let limit = CheckedArithmetic.maximumImageCopyFloats
        return CheckedArithmetic.product(phaseRows, phaseLength, g.stride.height * g.stride.width, g.channels, isAtMost: limit)
            && CheckedArithmetic.product(filters, g.outputHeight, phaseLength, isAtMost: limit)
    }

    /// Floats of one phase plane's row: every column an output row's taps read.
    var phaseLength: Int {
        let g = geometry
        return g.outputWidth + (g.kernel.width - 1) * g.dilation.width / g.stride.width
    }

    /// Rows of one phase plane.
    var phaseRows: Int {
        let g = geometry
        return g.outputHeight + (g.kernel.height - 1) * g.dilation.height / g.stride.height
    }

    private var phasePlane: Int { phaseRows * phaseLength }
    private var channelStride: Int { geometry.stride.height * geometry.stride.width * phasePlane }
    /// Floats of one image's phase-split copy.
    var copyCount: Int { geometry.channels * channelStride }
    /// Flat columns of one image's product: the last output row's throw-away columns are left off.
    var productColumns: Int { (geometry.outputHeight - 1) * phaseLength + geometry.outputWidth }
    /// Floats of one image's product, `[F][OH·phaseLength]`.
    private var stagingCount: Int { filters * geometry.outputHeight * phaseLength }

    /// Threads that each take a run of whole images (with their own copy and product).
    private var imageWorkers: Int {
        geometry.imageWorkers(filters: filters)
    }

    /// Floats of one thread's workspace slice for the forward pass: a copy and its product.
    private var sliceCount: Int { copyCount + stagingCount }

    /// Floats of one thread's workspace slice for the weight gradient: a copy, the output
    /// gradient transposed (`productColumns × F`) and a partial sum (`KH·KW × C × F`).
    private var gradientSliceCount: Int { copyCount + productColumns * filters + filters * geometry.columnRows }

    /// Floats of workspace for ``forward(input:weight:bias:output:workspace:)`` and
    /// ``weightGradient(input:outputGradient:weightGradient:workspace:)``.
    var workspaceCount: Int { max(1, imageWorkers) * max(sliceCount, weightGradientPays ? gradientSliceCount : 0) }

    /// For each tap `(c, kh, kw)` in weight order, where in the copy output `(0, 0)` reads it.
    func tapOffsets() -> [Int] {
        let g = geometry
        var offsets: [Int] = []
        offsets.reserveCapacity(g.columnRows)
        for channel in 0..<g.channels {
            for kh in 0..<g.kernel.height {
                let (row, rowPhase) = (kh * g.dilation.height).quotientAndRemainder(dividingBy: g.stride.height)
                for kw in 0..<g.kernel.width {
                    let (column, columnPhase) = (kw * g.dilation.width).quotientAndRemainder(dividingBy: g.stride.width)
                    offsets.append(channel * channelStride + (rowPhase * g.stride.width + columnPhase) * phasePlane
                                   + row * phaseLength + column)
                }
            }
        }
        return offsets
    }

    /// `output[n] = conv(input[n], weight) + bias` for every image.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let taps = tapOffsets()
        let sliceCount = sliceCount
        let outputImageSize = filters * g.outputPlaneSize
        taps.withUnsafeBufferPointer { taps in
            // Rows [first, first + count) of the product of one image, into its staging.
            func multiply(_ copy: UnsafePointer<Float>, filters range: Range<Int>, into staging: UnsafeMutablePointer<Float>) {
                let ldc = g.outputHeight * phaseLength
                product.multiply(m: range.count, n: productColumns, a: weight + range.lowerBound * g.columnRows,
                                 aRow: g.columnRows, aColumn: 1, b: copy, rowOffsets: taps,
                                 c: staging + range.lowerBound * ldc, ldc: ldc)
            }
            clear(workspace, sliceCount: sliceCount, floats: copyCount)
            if imageWorkers > 1 {
                Parallel.forEachDynamic(g.batch, workPerItem: g.imageWork(filters: filters)) { worker, image in
                    let copy = workspace + worker * sliceCount
                    let staging = copy + copyCount
                    split(input + image * g.imageSize, into: copy)
                    multiply(copy, filters: 0..<filters, into: staging)
                    copyOut(staging, filters: 0..<filters, bias: bias, into: output + image * outputImageSize)
                }
                return
            }
            // Fewer images than cores: one image at a time, its filters split across cores in
            // blocks of 6 (the kernel's row block).
            let (copy, staging) = (workspace, workspace + copyCount)
            let block = Int(KERNELS_DIRECT_FILTER_BLOCK)
            let blocks = (filters + block - 1) / block
            for image in 0..<g.batch {
                split(input + image * g.imageSize, into: copy)
                Parallel.forEach(blocks, workPerItem: block * g.columnRows * productColumns) { blockRange in
                    let range = (block * blockRange.lowerBound)..<min(filters, block * blockRange.upperBound)
                    multiply(copy, filters: range, into: staging)
                    copyOut(staging, filters: range, bias: bias, into: output + image * outputImageSize)
                }
            }
        }
    }

    /// `weightGradient = Σₙ dY[n] ⋆ input[n]`, overwriting it: per image, the copy and the
    /// transposed output gradient, then one product per tap, summed over the batch in partials
    /// `[KH·KW][C][F]` (``ImageProductSum``) and scattered into the weight layout `[F][C·KH·KW]`.
    func weightGradient(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let taps = tapOffsets()
        let (sliceCount, channelStride, tapsPerChannel) = (gradientSliceCount, channelStride, g.kernel.height * g.kernel.width)
        let transposedOffset = copyCount
        let partialOffset = copyCount + productColumns * filters
        let outputImageSize = filters * g.outputPlaneSize
        // Rows of the transposed gradient: one per flat column, `F` floats each.
        let gradientRows = (0..<productColumns).map { $0 * filters }
        let sum = ImageProductSum(batch: g.batch, imageWorkers: imageWorkers, imageWork: g.imageWork(filters: filters),
                                  rows: g.channels, rowLength: tapsPerChannel * filters,
                                  sliceCount: sliceCount, partialOffset: partialOffset)
        let partial = gradientRows.withUnsafeBufferPointer { gradientRows in
            // The copies' padding and the transposed gradient's rows for throw-away columns are
            // never written: zeroed once per call.
            sum.run(workspace: workspace, zeroing: partialOffset) { image, slice in
                split(input + image * g.imageSize, into: slice)
                transposeGradient(outputGradient + image * outputImageSize, into: slice + transposedOffset)
            } multiply: { _, slice, range, accumulate in
                // Channels `range` of every tap's product, into the partial `[tap][channel][filter]`.
                for tap in 0..<tapsPerChannel {
                    product.multiply(m: range.count, n: filters, a: slice + taps[tap] + range.lowerBound * channelStride,
                                     aRow: channelStride, aColumn: 1, b: slice + transposedOffset, rowOffsets: gradientRows,
                                     c: slice + partialOffset + (tap * g.channels + range.lowerBound) * filters, ldc: filters,
                                     accumulate: accumulate)
                }
            }
        }
        // [tap][channel][filter] → [filter][channel][tap].
        for tap in 0..<tapsPerChannel {
            for channel in 0..<g.channels {
                let sums = partial + (tap * g.channels + channel) * filters
                let target = weightGradient + channel * tapsPerChannel + tap
                for filter in 0..<filters { target[filter * g.columnRows] = sums[filter] }
            }
        }
    }

    /// One image's output gradient (`[F][OH][OW]`) as `[j][F]`, row `j = oh·phaseLength + ow`:
    /// the product's columns as rows (the rows of throw-away columns are left as they are).
    private func transposeGradient(_ gradient: UnsafePointer<Float>, into transposed: UnsafeMutablePointer<Float>) {
        let g = geometry
        // 16 filters at a time down all their rows: 16 read streams, not one per filter.
        for first in stride(from: 0, to: filters, by: 16) {
            for outputRow in 0..<g.outputHeight {
                VectorOperations.transpose(rows: min(16, filters - first), columns: g.outputWidth,
                                           from: gradient + first * g.outputPlaneSize + outputRow * g.outputWidth,
                                           sourceStride: g.outputPlaneSize,
                                           to: transposed + outputRow * phaseLength * filters + first, destinationStride: filters)
            }
        }
    }

    /// Copies one image's product (`[F][OH·phaseLength]`) for filters `range` into NCHW output,
    /// dropping the throw-away columns and adding the bias.
    private func copyOut(_ staging: UnsafePointer<Float>, filters range: Range<Int>, bias: UnsafePointer<Float>?,
                         into output: UnsafeMutablePointer<Float>) {
        let g = geometry
        let phaseLength = phaseLength
        for filter in range {
            let (source, destination) = (staging + filter * g.outputHeight * phaseLength, output + filter * g.outputPlaneSize)
            for row in 0..<g.outputHeight {
                VectorOperations.copy(source + row * phaseLength, adding: bias?[filter] ?? 0,
                                      to: destination + row * g.outputWidth, count: g.outputWidth)
            }
        }
    }

    /// Copies one image into the phase-split layout: padded pixel `(c, y, x)` goes to
    /// `c·channelStride + ((y mod s)·s + x mod s)·phasePlane + (y / s)·phaseLength + x / s`.
    /// Only the image's own pixels are written: the padding is the same for every image, so
    /// each copy buffer is zeroed once per call (``clear(_:sliceCount:floats:)``) and keeps its zeros.
    private func split(_ image: UnsafePointer<Float>, into copy: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (rowStride, columnStride) = (g.stride.height, g.stride.width)
        // Hoisted: each is computed (with divisions) from the geometry.
        let (phaseRows, phaseLength, phasePlane, channelStride) = (phaseRows, phaseLength, phasePlane, channelStride)
        for channel in 0..<g.channels {
            let plane = image + channel * g.inputPlaneSize
            // Input rows in order, so the reads are one forward stream the prefetcher follows
            // (all even rows and then all odd ones were two streams with gaps).
            for inputRow in 0..<g.height {
                let (row, rowPhase) = (inputRow + g.padding.height).quotientAndRemainder(dividingBy: rowStride)
                guard row < phaseRows else { break }
                let phases = copy + channel * channelStride + rowPhase * columnStride * phasePlane
                let source = plane + inputRow * g.width
                // The input streams in from L3 or memory, and the prefetcher alone left the copy
                // waiting on these loads: ask for the row `prefetchRows` ahead (12.7% → 9.2% of
                // resnet-c3s2's weight-gradient time in the copy, 1 thread).
                let ahead = source + Self.prefetchRows * g.width
                for line in stride(from: 0, to: g.width, by: 16) { kernels_prefetch(ahead + line) }
                if columnStride == 2 {
                    // Every other pixel to each phase, 16 per step (this type runs only on AVX-512 CPUs).
                    kernels_deinterleave_avx512(source, g.width, g.padding.width, phases + row * phaseLength,
                                                phases + phasePlane + row * phaseLength, phaseLength)
                    continue
                }
                for columnPhase in 0..<columnStride {
                    let columns = validOutputRange(outputLength: phaseLength, stride: columnStride,
                                                   offset: columnPhase - g.padding.width, inputLength: g.width)
                    guard !columns.isEmpty else { continue }
                    let first = source + columns.lowerBound * columnStride + columnPhase - g.padding.width
                    let valid = phases + columnPhase * phasePlane + row * phaseLength + columns.lowerBound
                    if columnStride == 1 {
                        valid.update(from: first, count: columns.count)
                    } else {
                        for index in 0..<columns.count { valid[index] = first[index * columnStride] }
                    }
                }
            }
        }
    }

    /// Zeroes the first `floats` of every thread's forward slice before a call's first image: what no
    /// image writes there (a copy's padding) stays zero for the whole call.
    private func clear(_ slices: UnsafeMutablePointer<Float>, sliceCount: Int, floats: Int) {
        for index in 0..<max(1, imageWorkers) { (slices + index * sliceCount).update(repeating: 0, count: floats) }
    }
}
