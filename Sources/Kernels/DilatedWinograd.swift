/// Dilated 3×3 stride-1 layers padded to keep their size (padding = dilation, the "atrous"
/// convolutions of DeepLab-style networks): all three passes as Winograd F(2×2, 3×3) on the
/// image's dilation² phase sub-images (space-to-batch).
///
/// With dilation `d`, output row `y` reads input rows `y − d`, `y` and `y + d`: only rows of its
/// own phase `y mod d`, and likewise for columns. Gathering the pixels of phase `(py, px)` into a
/// `⌈H/d⌉ × ⌈W/d⌉` block makes that phase an undilated 3×3 convolution with padding 1, whose
/// output is the same phase of the layer's output. ``WinogradF2x3`` runs the blocks as a batch
/// of images and the result is scattered back. Where `d` does not divide the size, the shorter
/// phases are zero-padded to the common size: the padding reads as the layer's own zero
/// padding, and the outputs it adds are dropped. The weight gradient sums over the blocks as
/// over images; the backward-data pass is again such a layer (the engine's rotated kernels,
/// padding `2d − d`).
///
/// Along each axis the phases' blocks are either separate images or stacked in one, a zero row
/// (column) between neighbours standing in for their padding, whichever makes fewer Winograd
/// tiles (tiles are 2×2 outputs, and a tile-row is rounded up to 4 tiles, so four 17-wide
/// blocks take 4 × 12 tiles apart and 36 stacked: see ``Layout``).
///
/// Why: these layers went to the channel-last kernel or im2col + OpenBLAS, at ~100% of sgemm,
/// where Winograd's 2.25× fewer multiplies run undilated layers at ~150%. Call-by-call pairs
/// are in ``minimumChannels``.
///
/// Memory stays bounded: a chunk of ``imagesPerChunk`` images at a time is gathered (about one
/// Winograd group's worth of sub-images).
struct DilatedWinograd: ForwardConvolution, Sendable {
    let geometry: ConvGeometry
    let filters: Int
    let rows: Layout
    let columns: Layout
    let imagesPerChunk: Int

    /// How one axis's `d` phases map onto Winograd's images: each phase a block of `⌈L/d⌉`
    /// (the longest phase), the blocks separate images or stacked in one with a zero between.
    struct Layout: Sendable, Equatable {
        let dilation: Int
        /// `⌈L/d⌉`: every phase's block, zero-padded to this length.
        let blockLength: Int
        let isStacked: Bool

        init(length: Int, dilation: Int, isStacked: Bool) {
            self.dilation = dilation
            blockLength = (length + dilation - 1) / dilation
            self.isStacked = isStacked
        }

        /// Winograd images along this axis per image of the layer.
        var images: Int { isStacked ? 1 : dilation }
        /// The Winograd images' length along this axis.
        var length: Int { isStacked ? dilation * (blockLength + 1) - 1 : blockLength }
        /// Which of the ``images`` phase `phase` is in, and where its block starts there.
        func place(_ phase: Int) -> (image: Int, offset: Int) { isStacked ? (0, phase * (blockLength + 1)) : (phase, 0) }
        /// The layer's pixels in phase `phase` along an axis of `length`.
        func phaseLength(_ phase: Int, of length: Int) -> Int { (length - phase + dilation - 1) / dilation }
    }

    /// Winograd images per image of the layer.
    var imagesPerImage: Int { rows.images * columns.images }
    private var planeSize: Int { rows.length * columns.length }

    /// - Parameter maximumImagesPerChunk: a cap on the images gathered together (tests use it to
    ///   run several chunks on small layers).
    /// - Parameter stacking: both axes' choice of separate or stacked blocks (tests use it to run
    ///   all four); by default the one with the fewest tiles, separate blocks on a tie.
    init(geometry: ConvGeometry, filters: Int, maximumImagesPerChunk: Int = .max, stacking: (rows: Bool, columns: Bool)? = nil) {
        self.geometry = geometry
        self.filters = filters
        let d = geometry.dilation
        func layouts(_ stacking: (rows: Bool, columns: Bool)) -> (Layout, Layout) {
            (Layout(length: geometry.height, dilation: d.height, isStacked: stacking.rows),
             Layout(length: geometry.width, dilation: d.width, isStacked: stacking.columns))
        }
        func winograd(_ layouts: (Layout, Layout), images: Int) -> WinogradF2x3 {
            Self.winograd(geometry, filters: filters, rows: layouts.0, columns: layouts.1, images: images)
        }
        let chosen = stacking.map(layouts) ?? [(false, false), (false, true), (true, false), (true, true)].map(layouts)
            .min { a, b in
                let (one, other) = (winograd(a, images: 1), winograd(b, images: 1))
                return one.batch * one.tilesPerImage < other.batch * other.tilesPerImage
            }!
        (rows, columns) = chosen
        // As many images as fill one of Winograd's groups of the whole batch's blocks.
        let perImage = chosen.0.images * chosen.1.images
        let group = winograd(chosen, images: max(1, geometry.batch)).imagesPerGroup
        imagesPerChunk = max(1, min(geometry.batch, group / perImage, maximumImagesPerChunk))
    }

    /// Fewest channels and filters. Call-by-call pairs on a 2-core AMD EPYC (Zen 3), what ran
    /// before (channel-last kernel, im2col + OpenBLAS, col2im) ÷ this, forward+backward:
    /// 8×256×28×28 → 256 dilation 2 1.50 (each pass 1.50–1.59), 1×256×64×64 → 256 d2 1.84–1.90
    /// by pass, 4×128×33×33 → 128 d3 1.34, 8×64×56×56 → 64 d2 1.23, 8×64×64×64 → 64 d4 1.21,
    /// 2×64×65×65 → 64 d4 1.15, 2×512×28×28 → 512 d4 1.15, 8×32×64×64 → 64 d2 1.06, 8×32×32×32
    /// → 32 d2 0.99; with 16 on one side it lost (8×16×64×64 → 32 d2: backward-data 0.90).
    static let minimumChannels = 32

    /// Whether this runs a layer: a 3×3 kernel, stride 1, a dilation above 1 on some axis and
    /// padding equal to it, ``minimumChannels`` channels and filters, and a phase block geometry
    /// Winograd takes. Not a dilation beyond the image's size: every phase but a few would be
    /// empty (nothing to gain), and the blocks' count or stacked length, growing with the
    /// dilation, would no longer be bounded by the image's checked size.
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        guard g.kernel == 3, g.stride == 1, g.dilation != 1, g.padding == g.dilation,
              g.dilation.height <= g.height, g.dilation.width <= g.width,
              g.channels >= minimumChannels, filters >= minimumChannels,
              let phase = try? ConvGeometry(batch: 1, channels: g.channels,
                                            height: (g.height + g.dilation.height - 1) / g.dilation.height,
                                            width: (g.width + g.dilation.width - 1) / g.dilation.width,
                                            kernel: 3, padding: 1) else { return false }
        return WinogradF2x3.applies(to: phase, filters: filters)
    }

    /// This for a layer it runs (``applies(to:filters:)``); nil for any other.
    static func forwardPass(_ g: ConvGeometry, filters: Int) -> DilatedWinograd? {
        applies(to: g, filters: filters) ? DilatedWinograd(geometry: g, filters: filters) : nil
    }

    /// Winograd over the blocks of `images` images.
    private func winograd(images: Int) -> WinogradF2x3 {
        Self.winograd(geometry, filters: filters, rows: rows, columns: columns, images: images)
    }

    /// Winograd over the blocks of `images` images of `geometry` laid out by `rows` and `columns`.
    private static func winograd(_ geometry: ConvGeometry, filters: Int, rows: Layout, columns: Layout, images: Int) -> WinogradF2x3 {
        WinogradF2x3(batch: images * rows.images * columns.images, inputChannels: geometry.channels, height: rows.length,
                     width: columns.length, outputChannels: filters, padding: 1, backend: .openBLAS)
    }

    /// Floats of one chunk's gathered image side and filter side.
    private var imageSideFloats: Int { imagesPerChunk * imagesPerImage * geometry.channels * planeSize }
    private var filterSideFloats: Int { imagesPerChunk * imagesPerImage * filters * planeSize }
    /// A later chunk's weight gradient, added to the first's.
    private var partialFloats: Int { geometry.batch > imagesPerChunk ? filters * geometry.columnRows : 0 }

    /// Floats of workspace: the gathered blocks of both sides, a partial weight gradient when
    /// there are several chunks, then Winograd's own.
    var workspaceCount: Int {
        imageSideFloats + filterSideFloats + partialFloats + winograd(images: imagesPerChunk).workspaceCount
    }

    private struct Buffers {
        let imageSide: UnsafeMutablePointer<Float>
        let filterSide: UnsafeMutablePointer<Float>
        let partial: UnsafeMutablePointer<Float>
        let winograd: UnsafeMutablePointer<Float>
    }

    private func buffers(_ workspace: UnsafeMutablePointer<Float>) -> Buffers {
        let filterSide = workspace + imageSideFloats
        let partial = filterSide + filterSideFloats
        return Buffers(imageSide: workspace, filterSide: filterSide, partial: partial, winograd: partial + partialFloats)
    }

    /// Calls `body(firstImage, images)` for consecutive chunks of at most ``imagesPerChunk`` images.
    private func forEachChunk(_ body: (_ firstImage: Int, _ images: Int) -> Void) {
        for firstImage in stride(from: 0, to: geometry.batch, by: imagesPerChunk) {
            body(firstImage, min(imagesPerChunk, geometry.batch - firstImage))
        }
    }

    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let buffers = buffers(workspace)
        forEachChunk { firstImage, images in
            gather(input + firstImage * g.imageSize, images: images, channels: g.channels, into: buffers.imageSide)
            winograd(images: images).run(input: buffers.imageSide, output: buffers.filterSide, bias: bias,
                                         workspace: buffers.winograd, kernel: .forward(weight))
            scatter(buffers.filterSide, images: images, channels: filters, into: output + firstImage * filters * g.outputPlaneSize)
        }
    }

    /// The gradient with respect to the kernels: Winograd's over each chunk's blocks, the
    /// chunks' sums added in order (the same result on every run).
    ///
    /// - Parameter weightGradient: `[filters, channels, 3, 3]`, overwritten.
    func weightGradient(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let buffers = buffers(workspace)
        forEachChunk { firstImage, images in
            gather(input + firstImage * g.imageSize, images: images, channels: g.channels, into: buffers.imageSide)
            gather(outputGradient + firstImage * filters * g.outputPlaneSize, images: images, channels: filters,
                   into: buffers.filterSide)
            let target = firstImage == 0 ? weightGradient : buffers.partial
            winograd(images: images).weightGradient(input: buffers.imageSide, outputGradient: buffers.filterSide,
                                                    weightGradient: target, workspace: buffers.winograd)
            if firstImage > 0 {
                VectorOperations.add(buffers.partial, into: weightGradient, count: filters * g.columnRows)
            }
        }
    }

    /// Copies `images` NCHW images of `channels` channels (the layer's size: output and input
    /// sizes are equal) into Winograd's images, `[image][row block][column block][channel][y][x]`,
    /// zero wherever no pixel of a phase lands.
    private func gather(_ source: UnsafePointer<Float>, images: Int, channels: Int, into target: UnsafeMutablePointer<Float>) {
        let dilation = geometry.dilation.width
        forEachRow(images: images, channels: channels, layer: UnsafeMutablePointer(mutating: source), winograd: target,
                   zeroing: true) { layerRow, winogradRows in
            for (phase, winogradRow) in winogradRows.enumerated() {
                let count = columns.phaseLength(phase, of: geometry.width)
                if dilation == 2 {
                    VectorOperations.copyEvenElements(layerRow + phase, to: winogradRow, count: count)
                } else {
                    copy(count, from: layerRow + phase, step: dilation, to: winogradRow, step: 1)
                }
            }
        }
    }

    /// The inverse of ``gather(_:images:channels:into:)``: each phase's pixels back to their
    /// places in the NCHW images, the padding between and after them dropped.
    private func scatter(_ source: UnsafePointer<Float>, images: Int, channels: Int, into target: UnsafeMutablePointer<Float>) {
        let dilation = geometry.dilation.width
        forEachRow(images: images, channels: channels, layer: target, winograd: UnsafeMutablePointer(mutating: source),
                   zeroing: false) { layerRow, winogradRows in
            for (phase, winogradRow) in winogradRows.enumerated() {
                copy(columns.phaseLength(phase, of: geometry.width), from: winogradRow, step: 1, to: layerRow + phase, step: dilation)
            }
        }
    }

    /// `count` floats from every `sourceStep`-th of `source` to every `targetStep`-th of `target`,
    /// without the overflow checks that made indexed loops take several cycles a float.
    @inline(__always)
    private func copy(_ count: Int, from source: UnsafePointer<Float>, step sourceStep: Int,
                      to target: UnsafeMutablePointer<Float>, step targetStep: Int) {
        var (source, target) = (source, target)
        for _ in 0..<count {
            target.pointee = source.pointee
            source = source.advanced(by: sourceStep)
            target = target.advanced(by: targetStep)
        }
    }

    /// Calls `body(layerRow, winogradRows)` for every row of every plane of `images` layer
    /// images at `layer`, in order, with where each of its `dw` column phases' pixels go in the
    /// Winograd images at `winograd`: each layer plane is read or written once, front to back,
    /// while its Winograd planes (zeroed first if asked) stay in cache. Layer planes are split
    /// across cores. Taken instead in the Winograd images' order, a layer plane was read `dh·dw`
    /// times, a phase at a time, and at dilation 4 the gather took an eighth of a weight
    /// gradient's time, stalled on loads.
    private func forEachRow(images: Int, channels: Int, layer: UnsafeMutablePointer<Float>, winograd: UnsafeMutablePointer<Float>,
                            zeroing: Bool,
                            _ body: (_ layerRow: UnsafeMutablePointer<Float>, _ winogradRows: [UnsafeMutablePointer<Float>]) -> Void) {
        let d = geometry.dilation
        Parallel.forEach(images * channels, workPerItem: geometry.inputPlaneSize) { planes in
            var winogradRows = [UnsafeMutablePointer<Float>](repeating: winograd, count: d.width)
            for plane in planes {
                let (image, channel) = plane.quotientAndRemainder(dividingBy: channels)
                // Block b of this image and channel is Winograd plane (image·blocks + b)·channels + channel.
                let firstPlane = winograd + (image * imagesPerImage * channels + channel) * planeSize
                if zeroing {
                    for block in 0..<imagesPerImage {
                        (firstPlane + block * channels * planeSize).update(repeating: 0, count: planeSize)
                    }
                }
                let layerPlane = layer + plane * geometry.inputPlaneSize
                for y in 0..<geometry.height {
                    let (row, py) = y.quotientAndRemainder(dividingBy: d.height)
                    let rowPlace = rows.place(py)
                    for px in 0..<d.width {
                        let columnPlace = columns.place(px)
                        let block = rowPlace.image * columns.images + columnPlace.image
                        winogradRows[px] = firstPlane + block * channels * planeSize
                            + (rowPlace.offset + row) * columns.length + columnPlace.offset
                    }
                    body(layerPlane + y * geometry.width, winogradRows)
                }
            }
        }
    }
}
