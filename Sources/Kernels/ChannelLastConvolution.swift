import KernelsSIMD

/// The forward pass (and, on rotated kernels, the backward-data pass) of layers larger than 1×1
/// with many channels, with the filters as the vector dimension: each image is copied
/// zero-padded and channel-last (`[y][x][c]`), and a micro-kernel keeps 6 output pixels × 64
/// filters in 24 registers on AVX-512 CPUs (3 × 32 in 12 on AVX2 ones), loading 4 weight
/// vectors and broadcasting 6 (3) input values per input channel of each tap. The result,
/// `[pixel][filter]` for a band of output rows, is transposed into the NCHW output.
///
/// Why: the product kernel over a phase-split image (``ImplicitConvolution``) vectorizes along
/// output columns, so at stride 1 each output row carries `KW − 1` columns that are computed and
/// thrown away (a fifth of the work for a 7×7 kernel on a 28-wide output), and layers with a
/// weight past L2 had to keep im2col. Here nothing is thrown away and the weight streams in
/// blocks of 64 filters.
///
/// Strided layers (the forward pass only) read every `stride`-th pixel of the copy; the blocks of
/// 6 pixels run on across row ends, so a 7- or 14-pixel row leaves no register block idle. The
/// products over a phase-split copy computed up to a fifth of their columns for nothing there,
/// or were too narrow for 14×14 outputs (which went to im2col). Two threads, `prof`:
/// 8×128×28×28 → 256 3×3 stride 2 (was im2col) 5.38 → 4.76 ms (minima of 7 alternating runs);
/// 16×64×32×32 → 128 medians of 8 3.10 → 2.74; 8×64×56×56 → 128 5×5 14.9 → 13.1; resnet-c3s2
/// medians of 12 alternating runs 5.00 → 4.92 ms (minima 4.62 → 3.68), and call by call (the
/// two alternating within one process) the pairs' median ratio 0.88–0.91 on resnet-c3s2,
/// 8×128×56×56 → 256 and 4×64×112×112 → 64. With a weight past L2, 8×256×28×28 → 512 3×3
/// stride 2 (4.7 MB) against im2col + OpenBLAS 0.96–0.97, and 8×256×14×14 → 512 0.95 with its
/// 7×7 images grouped into bands (``imagesPerBand``).
///
/// - Complexity: O(N · F · C·KH·KW · OH·OW) multiply-adds, plus one padded copy per image and
///   one transpose of the output.
struct ChannelLastConvolution: Sendable {
    let geometry: ConvGeometry
    let filters: Int
    /// Which build of the kernel runs (the widest this CPU has, unless a test asks).
    var instructionSet: DirectConvolution.InstructionSet = .widest

    /// Whether this CPU runs the kernel: AVX2 and FMA at least.
    static var isSupported: Bool { DirectConvolution.isSupported }
    /// Filters per packed weight block: the micro-kernel's width (4 vectors of 16, or 4 of 8).
    var filterBlock: Int { instructionSet == .avx512 ? 64 : 32 }

    /// Whether a layer runs here (its forward pass, or as the rotated convolution of a stride-1
    /// backward-data pass): a kernel larger than 1×1 (5×5 or larger on AVX2 CPUs, see
    /// ``minimumTaps``), at least ``minimumChannels`` channels and as many filters, and a padded
    /// copy and a staging row of at most ``CheckedArithmetic/maximumImageCopyFloats``. Where the
    /// direct kernel also takes the layer, it runs here only if ``precedesDirect(_:)``.
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        g.kernel.height * g.kernel.width >= minimumTaps && g.channels >= minimumChannels && filters >= minimumChannels
            && g.channelLastCopyFits
            && CheckedArithmetic.product(g.outputWidth, filters + 15, isAtMost: CheckedArithmetic.maximumImageCopyFloats)
    }

    /// Fewest channels and filters of a layer run here. On AVX-512 CPUs 64, so the 64-channel
    /// slices and 64-filter blocks are full: with 32 it ran no faster than the products over a
    /// phase-split copy. On AVX2-only ones 32 since Nov 27 2026 (measured with blocks of 16
    /// filters), once four slices went through each pass (ChannelLastConvolution.c): on a 2-core AMD EPYC
    /// (Zen 3), call-by-call pairs' median ratios of this kernel to what ran before, forward /
    /// backward-data: 8×32×56×56 → 96 5×5 0.895 / 0.887 (im2col / the direct kernel before; with
    /// two slices the forward had read 1.09), 8×32×32×32 → 128 5×5 0.880 / 0.945, 8×48×28×28 →
    /// 96 5×5 0.823 / 0.827, 8×96×27×27 → 32 5×5 0.552 / 0.531, 8×256×28×28 → 32 5×5 0.577 /
    /// 0.480 (im2col + col2im before).
    static var minimumChannels: Int { DirectConvolution.InstructionSet.widest == .avx512 ? 64 : 32 }

    /// Whether a layer the direct kernel also takes (few filters, see
    /// ``DirectConvolution/applies(to:filters:backend:)``) runs here instead: on AVX2-only CPUs,
    /// with 48+ channels or a 7×7+ kernel. Same measurements as ``minimumChannels``, this kernel
    /// ÷ the direct one: 8×64×32×32 → 32 5×5 forward 0.624, 8×48×56×56 → 48 5×5 0.773 /
    /// backward-data 0.672, 8×32×56×56 → 64 backward-data (64 channels in) 0.786, 8×32×28×28 →
    /// 32 7×7 0.595 / 0.556, 8×32×64×64 → 32 7×7 0.703 / 0.562; but with 32 channels at 5×5 the
    /// direct kernel stays ahead: 8×32×64×64 → 32 1.038 / 1.038, 8×32×56×56 → 64 forward 1.015,
    /// 8×64×32×32 → 32 backward-data (32 channels in) 1.070.
    static func precedesDirect(_ g: ConvGeometry) -> Bool {
        DirectConvolution.InstructionSet.widest != .avx512 && (g.channels >= 48 || g.kernel.height * g.kernel.width >= 49)
    }

    /// Fewest taps (`KH·KW`) of a layer run here: any kernel larger than 1×1 on AVX-512 CPUs; on
    /// AVX2 ones (blocks of 16 filters when measured, so each input was loaded 4× as often per
    /// multiply-add) 5×5 and larger, where im2col writes the image 25+ times over. On a 2-core AMD EPYC (Zen
    /// 3), call-by-call pairs' median ratios of im2col + OpenBLAS to this kernel: 8×64×28×28 → 64
    /// 7×7 forward 1.34, backward-data 1.47; 8×64×32×32 → 128 5×5 1.17, 1.09; 8×96×27×27 → 256
    /// 5×5 1.01, 0.99; but 3×3 kernels lost: resnet-c3s2 forward 0.89, 8×256×28×28 → 256
    /// dilation 2 0.975, backward-data 0.955. With four slices per pass (see
    /// ChannelLastConvolution.c) they still lose, this kernel ÷ im2col: strided forward 1.04–1.11
    /// (resnet-c3s2, 8×128×28×28 → 256, 8×256×14×14 → 512, 4×64×112×112 → 64), the dilated
    /// layer's backward-data 1.025; with 3 × 32 blocks (ChannelLastConvolution.c) still 1.05–1.11
    /// (8×128×56×56 → 128 and 8×128×28×28 → 256 at stride 2 1.068 and 1.054, 8×256×14×14 → 512
    /// 1.107) and dilation 2 1.042.
    static var minimumTaps: Int { DirectConvolution.InstructionSet.widest == .avx512 ? 2 : 25 }

    /// Filters rounded up to whole vectors of 16: the packed weight's and the staging's width.
    var filtersPadded: Int { (filters + 15) / 16 * 16 }
    private var paddedWidth: Int { geometry.channelLastPaddedWidth }
    private var taps: Int { geometry.kernel.height * geometry.kernel.width }
    /// Floats of one image's channel-last copy, rounded up to a cache line.
    /// Floats of one copy, rounded up to a cache line: a band's padded rows with band copies,
    /// else the whole padded image.
    private var copyCount: Int {
        let floats = usesBandCopies ? paddedRows(band: 0).count * paddedWidth * geometry.channels : geometry.channelLastCopyFloats
        return (floats + 15) / 16 * 16
    }
    /// Whether each thread copies one band's padded rows at a time rather than the whole image
    /// (images split across threads, one per band, several bands): the band's copy then stays
    /// in L2 beside its staging while the kernel reads it, where a whole image (1.7–3.3 MB for
    /// 8×128×56×56 → 256 or 4×64×112×112 → 64 at stride 2) was read back from L3. Only where the
    /// rows a band shares with the next (copied twice) are at most a quarter of its own.
    /// Call-by-call pairs' median ratio against whole-image copies: 4×64×112×112 → 64 3×3
    /// stride 2 0.925, resnet-c3s2 0.971, 8×128×56×56 → 256 0.983; with large overlaps
    /// (8×96×27×27 → 256 5×5, 4-row bands reading 8 rows) 1.006, 8×256×28×28 → 256 dilation 2
    /// 1.014.
    var usesBandCopies: Bool {
        let g = geometry
        let shared = (g.kernel.height - 1) * g.dilation.height + 1 - g.stride.height
        return imageWorkers > 1 && imagesPerBand == 1 && bands > 1 && 4 * shared <= bandRows * g.stride.height
    }
    /// Rows of the padded copy band `band`'s output rows read.
    private func paddedRows(band: Int) -> Range<Int> {
        let g = geometry
        let first = band * bandRows
        let rows = min(bandRows, g.outputHeight - first)
        return (first * g.stride.height)..<((first + rows - 1) * g.stride.height + (g.kernel.height - 1) * g.dilation.height + 1)
    }
    /// Floats of the packed weight, then of the padded bias.
    private var packedWeightCount: Int { filtersPadded * taps * geometry.channels }
    /// Output rows per band: a band's staging (`rows · OW · filtersPadded`) stays in L2 until
    /// it is transposed out.
    var bandRows: Int {
        Self.bandRows(rows: geometry.outputHeight, width: geometry.outputWidth, filtersPadded: filtersPadded,
                      weightFloats: packedWeightCount)
    }

    /// Rows per band of `rows` output rows `width` pixels wide: as many as keep the band's
    /// staging (`rows · width · filtersPadded` floats) within 128 KiB, at least one; within
    /// 256 KiB where a weight of `weightFloats` past 1 MiB would otherwise serve bands of at most
    /// 128 pixels (more than 128 filters): every pass of a band streams the whole weight
    /// through L1, so a band of more pixels streams it fewer times, while a weight within L2
    /// wants the room for itself. Call-by-call pairs' median ratios, 256 KiB ÷ 128 KiB, forward:
    /// 8×256×28×28 → 512 3×3 stride 2 (4.7 MB, 56-pixel bands) 0.94–0.96, 8×96×27×27 → 256
    /// 5×5 (2.4 MB) 0.977, 8×256×28×28 → 256 dilation 2 0.976, 8×128×56×56 → 256 stride 2
    /// (1.2 MB) 0.977–0.999; but 8×64×32×32 → 128 5×5 (0.8 MB) 1.00, resnet-c3s2 1.03,
    /// 4×64×112×112 → 64 stride 2 1.08, and the rotated backward-data pass of 8×96×27×27 → 256
    /// (96 filters, 324-pixel bands) 1.02.
    static func bandRows(rows: Int, width: Int, filtersPadded: Int, weightFloats: Int) -> Int {
        let widens = weightFloats > 1 << 18 && filtersPadded > 128
        let stagingFloats = widens ? 1 << 16 : 1 << 15
        return max(1, min(rows, stagingFloats / max(1, width * filtersPadded)))
    }
    private var bands: Int { (geometry.outputHeight + bandRows - 1) / bandRows }
    /// Images one band covers: several where the weight is past L2 (more than
    /// ``largeWeightFloats``) and a whole image is fewer than ``minimumBandPixels`` pixels (7×7
    /// outputs), their copies side by side, the band running on from one image's last row into
    /// the next image's first; at most an equal share of the batch per thread, so every thread
    /// has a group. Otherwise 1: with a weight in L2, grouping lost more to coarser sharing of
    /// the batch between threads than it gained (8×64×14×14 → 128 3×3 stride 2, 0.31 ms,
    /// call-by-call pairs' median ratio 0.90 for one image per band).
    var imagesPerBand: Int {
        let g = geometry
        guard imageWorkers > 1, bandRows == g.outputHeight, g.outputPlaneSize < Self.minimumBandPixels,
              !CheckedArithmetic.product(filters, g.columnRows, isAtMost: Self.largeWeightFloats) else { return 1 }
        let wanted = (Self.minimumBandPixels + g.outputPlaneSize - 1) / g.outputPlaneSize
        return max(1, min(wanted, (g.batch + imageWorkers - 1) / imageWorkers))
    }
    /// Fewest pixels a band over a large weight should have: each 16 KB slice of it brought into
    /// L1 then serves 40+ blocks of 6 pixels. One 7×7 image was 8 blocks, and the weight of
    /// 8×256×14×14 → 512 3×3 stride 2 (4.7 MB) streamed from L3 for each: grouping 4 images,
    /// call-by-call pairs' median ratio 0.97, and against im2col + OpenBLAS 0.95 (one image per
    /// band: 1.00).
    static let minimumBandPixels = 256
    /// Floats of weight (`F·C·KH·KW`, 2 MiB) past which bands cover several small images.
    static let largeWeightFloats = 1 << 19
    /// Floats of one thread's `[pixel][filter]` staging: a band's rows, or a group's images.
    private var stagingCount: Int { max(bandRows * geometry.outputWidth, imagesPerBand * geometry.outputPlaneSize) * filtersPadded }
    private var imageWorkers: Int { geometry.imageWorkers(filters: filters) }
    /// Threads that share one image's bands when there are fewer images than cores.
    private var bandWorkers: Int { imageWorkers > 1 ? 1 : Parallel.chunkCount(bands, workPerItem: geometry.imageWork(filters: filters) / bands) }
    private var slices: Int { max(1, imageWorkers, bandWorkers) }
    /// One thread's slice: its copies, then its staging.
    private var sliceCount: Int { imagesPerBand * copyCount + stagingCount }
    /// Floats of workspace ``forward(input:weight:bias:output:workspace:)`` needs.
    var workspaceCount: Int { packedWeightCount + filtersPadded + slices * sliceCount }

    /// `output[n] = conv(input[n], weight) (+ bias)` for every image.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (channels, paddedWidth, copyCount, sliceCount) = (g.channels, paddedWidth, copyCount, sliceCount)
        let packed = workspace
        let packedBias = packed + packedWeightCount
        let slicesStart = packedBias + filtersPadded
        pack(weight, into: packed)
        if let bias {
            packedBias.update(from: bias, count: filters)
            (packedBias + filters).update(repeating: 0, count: filtersPadded - filters)
        }
        // The copies' padding is never written: zeroed once per call (with bands split across
        // cores, only the first slice holds a copy; the others are staging only).
        let imagesPerBand = imagesPerBand
        // Grouped images' copies (1.8 MB for 4 of 8×512×14×14 → 512 at stride 2) do not stay in
        // L2 beside the staging and the streaming weight: call-by-call pairs' median ratio with
        // the kernel prefetching each block's inputs 0.936–0.944 there, 0.98–0.99 on 8×256×14×14
        // → 512; one image per band, already in L2, 1.01–1.04 (8×256×28×28 → 512).
        let prefetchesInputs = imagesPerBand > 1
        let copiesCount = imagesPerBand * copyCount
        for slice in 0..<(imageWorkers > 1 ? slices : 1) {
            (slicesStart + slice * sliceCount).update(repeating: 0, count: copiesCount)
        }
        let tapOffsets = (0..<taps).map { tap in
            let (row, column) = tap.quotientAndRemainder(dividingBy: g.kernel.width)
            return (row * g.dilation.height * paddedWidth + column * g.dilation.width) * channels
        }
        let outputImageSize = filters * g.outputPlaneSize
        let rowStep = g.stride.height * paddedWidth * channels
        tapOffsets.withUnsafeBufferPointer { tapOffsets in
            // `rows` output rows into `staging`, from the copies at `copy` (`copyCount` floats
            // apart), each giving `rowsPerImage` of them.
            func convolve(copy: UnsafePointer<Float>, rows: Int, rowsPerImage: Int, staging: UnsafeMutablePointer<Float>) {
                Self.rows(instructionSet, image: copy, rowStep: rowStep, rows: rows, rowsPerImage: rowsPerImage,
                          imageStep: copyCount, channels: channels, pixelStep: g.stride.width * channels,
                          tapOffsets: tapOffsets, weight: packed, filtersPadded: filtersPadded,
                          bias: bias == nil ? nil : packedBias, outputWidth: g.outputWidth, out: staging,
                          prefetchInputs: prefetchesInputs)
            }
            func transposeOut(rows: Int, from staging: UnsafePointer<Float>, to output: UnsafeMutablePointer<Float>) {
                VectorOperations.transpose(rows: rows * g.outputWidth, columns: filters, from: staging, sourceStride: filtersPadded,
                                           to: output, destinationStride: g.outputPlaneSize)
            }
            // Band `band` of one image, from `copy`: the whole padded image, or (`bandCopy`) only
            // the band's padded rows.
            func run(band: Int, copy: UnsafePointer<Float>, bandCopy: Bool = false, staging: UnsafeMutablePointer<Float>,
                     output: UnsafeMutablePointer<Float>) {
                let first = band * bandRows
                let rows = min(bandRows, g.outputHeight - first)
                convolve(copy: bandCopy ? copy : copy + first * rowStep, rows: rows, rowsPerImage: rows, staging: staging)
                transposeOut(rows: rows, from: staging, to: output + first * g.outputWidth)
            }
            if imageWorkers > 1 {
                let groups = (g.batch + imagesPerBand - 1) / imagesPerBand
                Parallel.forEachDynamic(groups, workPerItem: imagesPerBand * g.imageWork(filters: filters)) { worker, group in
                    let slice = slicesStart + worker * sliceCount
                    let staging = slice + copiesCount
                    let images = (group * imagesPerBand)..<min(g.batch, (group + 1) * imagesPerBand)
                    if usesBandCopies {
                        let image = images.lowerBound
                        for band in 0..<bands {
                            g.copyChannelLast(input + image * g.imageSize, paddedRows: paddedRows(band: band), into: slice)
                            run(band: band, copy: slice, bandCopy: true, staging: staging, output: output + image * outputImageSize)
                        }
                        return
                    }
                    for (index, image) in images.enumerated() {
                        g.copyChannelLast(input + image * g.imageSize, into: slice + index * copyCount)
                    }
                    if imagesPerBand == 1 {
                        for band in 0..<bands {
                            run(band: band, copy: slice, staging: staging, output: output + images.lowerBound * outputImageSize)
                        }
                        return
                    }
                    convolve(copy: slice, rows: images.count * g.outputHeight, rowsPerImage: g.outputHeight, staging: staging)
                    for (index, image) in images.enumerated() {
                        transposeOut(rows: g.outputHeight, from: staging + index * g.outputPlaneSize * filtersPadded,
                                     to: output + image * outputImageSize)
                    }
                }
                return
            }
            // Fewer images than cores: one image at a time, its bands split across cores.
            for image in 0..<g.batch {
                g.copyChannelLast(input + image * g.imageSize, into: slicesStart)
                Parallel.forEachChunk(bands, workPerItem: g.imageWork(filters: filters) / bands) { chunk, range in
                    for band in range {
                        run(band: band, copy: slicesStart, staging: slicesStart + chunk * sliceCount + copyCount,
                            output: output + image * outputImageSize)
                    }
                }
            }
        }
    }

    /// `weight[f][c][kh][kw]` into blocks of ``filterBlock`` filters, each `[kh·KW + kw][c][its
    /// filters]`, filters past `F` zero: per block, one transpose of its filters × `C·KH·KW`
    /// whose rows land tap-major (`kernels_pack_taps_avx512` / `_avx2`), split across cores by
    /// block and by runs of 512 columns. On one thread (the 4.7 MB weight of 8×256×14×14 → 512 3×3 stride 2), the other
    /// core waited; call-by-call pairs' median ratio of the split pack's forward pass to it
    /// 0.94, and of this transpose to one per block and channel 0.975.
    private func pack(_ weight: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        let (taps, channels, filters, filtersPadded) = (taps, geometry.channels, filters, filtersPadded)
        if filters < filtersPadded { packed.update(repeating: 0, count: packedWeightCount) }
        let columns = channels * taps
        let runs = (columns + Self.packColumnRun - 1) / Self.packColumnRun
        let filterBlock = filterBlock
        let packTaps = instructionSet == .avx512 ? kernels_pack_taps_avx512 : kernels_pack_taps_avx2
        let blocks = (filters + filterBlock - 1) / filterBlock
        Parallel.forEach(blocks * runs, workPerItem: filterBlock * Self.packColumnRun) { items in
            for item in items {
                let (block, run) = item.quotientAndRemainder(dividingBy: runs)
                let first = block * filterBlock
                packTaps(weight + first * columns, min(filterBlock, filters - first), columns, channels, taps,
                         run * Self.packColumnRun, min(columns, (run + 1) * Self.packColumnRun),
                         packed + first * columns, min(filterBlock, filtersPadded - first))
            }
        }
    }
    /// Columns of the weight one item of ``pack(_:into:)`` transposes.
    private static let packColumnRun = 512

    /// `kernels_channel_last_rows_avx512` or `_avx2` (see KernelsSIMD.h), whose packed weight
    /// is in blocks of 64 or 32 filters (``filterBlock``).
    static func rows(_ instructionSet: DirectConvolution.InstructionSet, image: UnsafePointer<Float>, rowStep: Int, rows: Int,
                     rowsPerImage: Int, imageStep: Int, channels: Int, pixelStep: Int, tapOffsets: UnsafeBufferPointer<Int>,
                     weight: UnsafePointer<Float>, filtersPadded: Int, bias: UnsafePointer<Float>?, outputWidth: Int,
                     out: UnsafeMutablePointer<Float>, prefetchInputs: Bool) {
        let kernel = instructionSet == .avx512 ? kernels_channel_last_rows_avx512 : kernels_channel_last_rows_avx2
        kernel(image, rowStep, rows, rowsPerImage, imageStep, channels, pixelStep, tapOffsets.baseAddress, tapOffsets.count,
               weight, filtersPadded, bias, outputWidth, out, prefetchInputs)
    }
}

extension ChannelLastConvolution: ForwardConvolution {}
