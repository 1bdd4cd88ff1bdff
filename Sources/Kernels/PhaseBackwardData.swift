import KernelsSIMD

/// The backward-data pass of stride-2 layers with 64+ channels and 64+ filters on AVX-512 CPUs,
/// as one stride-1 convolution per output phase by the channel-last kernel
/// (``ChannelLastConvolution``), instead of a GEMM into a column matrix and col2im.
///
/// Pixel `(y, x) = (2i + py, 2j + px)` of the input gradient gathers the output gradient only
/// through the taps with `kh ≡ py + pH` and `kw ≡ px + pW` (mod 2), and through tap `(kh, kw)` it
/// reads `dY` at `(i + ah, j + aw)`, `ah = (py + pH − kh) / 2`, `aw = (px + pW − kw) / 2`. So each
/// of the four phases is a stride-1 correlation of the output gradient (`F` channels in, `C`
/// out) with its own taps at fixed offsets: every multiply-add is one the layer needs (3×3
/// kernels: 1, 2, 2 and 4 taps), none is spent on a column matrix, and the sums need no zeroed
/// image to land in. Each image's output gradient is copied once, zero-padded and channel-last;
/// each phase runs over it with its own packed weight, is transposed into planes, and the
/// phases are interleaved into the image's rows.
///
/// Against the GEMM into columns and col2im (which also zeroes the image first), call-by-call
/// pairs' median ratio of the two (`prof`, two threads): resnet-c3s2 0.89, 8×128×28×28 → 256
/// 3×3 stride 2 0.87, 8×128×56×56 → 256 0.93, 4×64×112×112 → 64 0.80, 16×64×32×32 → 128 0.73,
/// 8×64×14×14 → 128 0.81.
///
/// - Complexity: O(N · F · C·KH·KW · OH·OW) multiply-adds, plus one copy of each image's output
///   gradient, one transpose of each phase and one interleave of the input gradient.
struct PhaseBackwardData: Sendable {
    let geometry: ConvGeometry
    let filters: Int
    /// The four phases, `(py, px)` in row-major order.
    let phases: [Phase]
    /// The output gradient's side, zero-padded so every phase's reads stay inside the copy:
    /// rows `−ah` above and `(rows − 1 + ah) − (OH − 1)` below, the larger on both sides. Nil if
    /// that geometry's sizes overflow.
    let gradientGeometry: ConvGeometry?

    init(geometry g: ConvGeometry, filters: Int) {
        geometry = g
        self.filters = filters
        phases = (0..<4).map { index in
            let (py, px) = index.quotientAndRemainder(dividingBy: 2)
            let rowTaps = Self.axisTaps(kernel: g.kernel.height, padding: g.padding.height, phase: py)
            let columnTaps = Self.axisTaps(kernel: g.kernel.width, padding: g.padding.width, phase: px)
            let taps = rowTaps.flatMap { row in
                columnTaps.map { column in (row.index * g.kernel.width + column.index, row.offset, column.offset) }
            }
            return Phase(rows: Self.phaseLength(g.height, py), columns: Self.phaseLength(g.width, px), taps: taps)
        }
        var padding = (height: 0, width: 0)
        for phase in phases where phase.rows > 0 && phase.columns > 0 {
            for tap in phase.taps {
                padding.height = max(padding.height, -tap.rowOffset, phase.rows - 1 + tap.rowOffset - (g.outputHeight - 1))
                padding.width = max(padding.width, -tap.columnOffset, phase.columns - 1 + tap.columnOffset - (g.outputWidth - 1))
            }
        }
        // A 1×1 kernel over the padded gradient: only its size and padding are used.
        gradientGeometry = try? ConvGeometry(batch: g.batch, channels: filters, height: g.outputHeight, width: g.outputWidth,
                                             kernel: 1, padding: Size2D(height: padding.height, width: padding.width))
    }

    /// One output phase: its rows and columns of the input gradient, and its taps.
    struct Phase: Sendable {
        let rows: Int
        let columns: Int
        /// `(kh·KW + kw, ah, aw)`: the tap and where it reads the output gradient from `(i, j)`.
        let taps: [(tap: Int, rowOffset: Int, columnOffset: Int)]
    }

    /// Whether a layer's backward-data pass runs here: stride 2 on both axes, no dilation, a
    /// kernel larger than 1×1, 64+ channels and 64+ filters (the channel-last kernel's full
    /// slices and blocks), a weight within ``ChannelLastConvolution/largeWeightFloats`` or phases
    /// of at least ``largeWeightMinimumPhasePixels`` (each image streams every phase's weight:
    /// call-by-call pairs' median ratios against the GEMM and col2im, 3×3 kernels, for weights
    /// past 2 MiB: 8×256×14×14 → 512, 7×7 phases, 1.09–1.12; 8×256×20×20 → 512 0.966,
    /// 8×256×28×28 → 512 0.931, 8×192×28×28 → 384 0.896, 4×256×56×56 → 512 1.011), at least as
    /// many images as threads (the images are what is split across them), and copies that fit.
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        guard g.stride == 2, g.dilation == 1, g.kernel.height * g.kernel.width > 1, g.channels >= 64, filters >= 64,
              CheckedArithmetic.product(filters, g.columnRows, isAtMost: ChannelLastConvolution.largeWeightFloats)
                || g.outputPlaneSize >= largeWeightMinimumPhasePixels,
              g.batch >= Parallel.coreCount else { return false }
        return PhaseBackwardData(geometry: g, filters: filters).gradientGeometry?.channelLastCopyFits ?? false
    }

    /// Fewest pixels per phase (about the output gradient's plane) at which a weight past 2 MiB,
    /// streamed once per image, still pays (see ``applies(to:filters:)``).
    static let largeWeightMinimumPhasePixels = 100

    /// Input-gradient rows (or columns) of phase `phase` (0 or 1) along an axis of `size`.
    private static func phaseLength(_ size: Int, _ phase: Int) -> Int { (size - phase + 1) / 2 }

    /// Taps `k` of an axis whose phase `phase` reads, with their offsets `(phase + padding − k) / 2`.
    private static func axisTaps(kernel: Int, padding: Int, phase: Int) -> [(index: Int, offset: Int)] {
        (0..<kernel).compactMap { k in
            let distance = phase + padding - k
            return distance % 2 == 0 ? (k, distance / 2) : nil
        }
    }

    /// Channels rounded up to whole vectors of 16: the packed weights' and the staging's width.
    private var channelsPadded: Int { (geometry.channels + 15) / 16 * 16 }
    /// Floats of phase `phase`'s packed weight.
    private func packedCount(_ phase: Phase) -> Int { channelsPadded * phase.taps.count * filters }
    /// Floats of the copy of one image's output gradient, rounded up to a cache line.
    private var copyCount: Int { ((gradientGeometry?.channelLastCopyFloats ?? 0) + 15) / 16 * 16 }
    /// Phase rows per band: a band's staging (`rows · columns · channelsPadded`) stays in L2.
    private func bandRows(_ phase: Phase) -> Int {
        ChannelLastConvolution.bandRows(rows: phase.rows, width: phase.columns, filtersPadded: channelsPadded,
                                       weightFloats: packedCount(phase))
    }
    private var stagingCount: Int {
        phases.map { bandRows($0) * $0.columns * channelsPadded }.max() ?? 0
    }
    /// One thread's slice: the gradient's copy, a band's staging, the phases' planes (an image).
    private var sliceCount: Int { copyCount + stagingCount + geometry.imageSize }
    private var imageWorkers: Int { max(1, geometry.imageWorkers(filters: filters)) }
    /// Floats of workspace ``backwardData(outputGradient:weight:inputGradient:workspace:)`` needs.
    var workspaceCount: Int { phases.reduce(0) { $0 + packedCount($1) } + imageWorkers * sliceCount }

    /// `inputGradient[n]` from `outputGradient[n]` for every image, overwriting it.
    func backwardData(outputGradient: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      inputGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        guard let gradient = gradientGeometry else { preconditionFailure("applies(to:filters:) checked the copy's size") }
        let channelsPadded = channelsPadded
        var packed: [UnsafeMutablePointer<Float>] = []
        var next = workspace
        for phase in phases {
            packed.append(next)
            next += packedCount(phase)
        }
        pack(weight, into: packed)
        let slicesStart = next
        let (copyCount, stagingCount, sliceCount) = (copyCount, stagingCount, sliceCount)
        // The copies' padding is never written: zeroed once per call.
        for worker in 0..<imageWorkers { (slicesStart + worker * sliceCount).update(repeating: 0, count: copyCount) }
        let paddedWidth = gradient.channelLastPaddedWidth
        let origin = (gradient.padding.height * paddedWidth + gradient.padding.width) * filters
        let tapOffsets = phases.map { phase in phase.taps.map { ($0.rowOffset * paddedWidth + $0.columnOffset) * filters } }
        // Where each phase's planes start in a slice's image-sized region, `[c][i][j]` per phase.
        var planeStarts: [Int] = []
        var planeFloats = 0
        for phase in phases {
            planeStarts.append(planeFloats)
            planeFloats += g.channels * phase.rows * phase.columns
        }
        let packedWeights = packed.map { UnsafePointer($0) }
        Parallel.forEachDynamic(g.batch, workPerItem: g.imageWork(filters: filters)) { worker, image in
            let copy = slicesStart + worker * sliceCount
            let staging = copy + copyCount
            let planes = staging + stagingCount
            gradient.copyChannelLast(outputGradient + image * gradient.imageSize, into: copy)
            for (index, phase) in phases.enumerated() where phase.rows > 0 && phase.columns > 0 {
                let phasePlanes = planes + planeStarts[index]
                let planeSize = phase.rows * phase.columns
                if phase.taps.isEmpty {
                    phasePlanes.update(repeating: 0, count: g.channels * planeSize)
                    continue
                }
                let bandRows = bandRows(phase)
                tapOffsets[index].withUnsafeBufferPointer { offsets in
                    for first in stride(from: 0, to: phase.rows, by: bandRows) {
                        let rows = min(bandRows, phase.rows - first)
                        ChannelLastConvolution.rows(.avx512, image: copy + origin + first * paddedWidth * filters,
                                                    rowStep: paddedWidth * filters, rows: rows, rowsPerImage: rows, imageStep: 0,
                                                    channels: filters, pixelStep: filters, tapOffsets: offsets,
                                                    weight: packedWeights[index], filtersPadded: channelsPadded, bias: nil,
                                                    outputWidth: phase.columns, out: staging, prefetchInputs: false)
                        VectorOperations.transpose(rows: rows * phase.columns, columns: g.channels, from: staging,
                                                   sourceStride: channelsPadded, to: phasePlanes + first * phase.columns,
                                                   destinationStride: planeSize)
                    }
                }
            }
            // Row y = 2i + py interleaves phase (py, 0)'s row i (even columns) with (py, 1)'s.
            let destination = inputGradient + image * g.imageSize
            for channel in 0..<g.channels {
                for y in 0..<g.height {
                    let (i, py) = y.quotientAndRemainder(dividingBy: 2)
                    let even = phases[2 * py], odd = phases[2 * py + 1]
                    kernels_interleave_avx512(planes + planeStarts[2 * py] + (channel * even.rows + i) * even.columns,
                                              planes + planeStarts[2 * py + 1] + (channel * odd.rows + i) * odd.columns,
                                              g.width, destination + channel * g.inputPlaneSize + y * g.width)
                }
            }
        }
    }

    /// `weight[f][c][kh][kw]` into each phase's blocks of 64 channels, `[t][f][its channels]` for
    /// the phase's taps `t`, channels past `C` zero: per block and filter, one transpose of its
    /// channels × taps, whose rows go to the phases that use them.
    private func pack(_ weight: UnsafePointer<Float>, into packed: [UnsafeMutablePointer<Float>]) {
        let g = geometry
        let taps = g.kernel.height * g.kernel.width
        let channelsPadded = channelsPadded
        // Where each tap goes: its phase and its index among that phase's taps.
        var destinations = [(phase: Int, index: Int)](repeating: (0, 0), count: taps)
        for (phaseIndex, phase) in phases.enumerated() {
            for (index, tap) in phase.taps.enumerated() { destinations[tap.tap] = (phaseIndex, index) }
        }
        var transposed = [Float](repeating: 0, count: taps * 64)
        transposed.withUnsafeMutableBufferPointer { transposed in
            let transposed = transposed.baseAddress!
            for first in stride(from: 0, to: channelsPadded, by: 64) {
                let width = min(64, channelsPadded - first)
                let used = min(width, g.channels - first)
                // Lanes past C stay zero: the transpose writes only the `used` channels of a row.
                if used < width { transposed.update(repeating: 0, count: taps * width) }
                for filter in 0..<filters {
                    VectorOperations.transpose(rows: used, columns: taps, from: weight + (filter * g.channels + first) * taps,
                                               sourceStride: taps, to: transposed, destinationStride: width)
                    for tap in 0..<taps {
                        let (phase, index) = destinations[tap]
                        let block = packed[phase] + first * phases[phase].taps.count * filters
                        (block + (index * filters + filter) * width).update(from: transposed + tap * width, count: width)
                    }
                }
            }
        }
    }
}
