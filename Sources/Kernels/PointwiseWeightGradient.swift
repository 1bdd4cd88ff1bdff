/// The weight gradient of a 1×1, stride-1, unpadded layer on AVX-512 CPUs, as
/// `dWᵀ = Σₙ X[n] · dY[n]ᵀ` by ``ProductKernel``: each image is already `A` (`C × P` for
/// `P = H·W` positions, read in place) and its output gradient, transposed to `[P][F]`, is `B`.
/// Through OpenBLAS the same sum was one GEMM per block of images copied side by side (a tenth
/// of the pass copying, another packing). Medians of 5 alternating `prof` runs of 1 s, 2
/// threads: 8×256×56×56 → 64 3.94 → 3.19–3.40 ms (minima). Only on planes of at least
/// ``minimumPositions``: see there.
struct PointwiseWeightGradient {
    let geometry: ConvGeometry
    let filters: Int
    let product: ProductKernel

    /// Largest transposed output gradient of one image, and largest partial `dWᵀ` (1 MiB
    /// each): the product reads the first once per 64 filters and adds into the second once
    /// per image, both from L2 only if they fit. Slower beyond: 8×64×56×56 → 256 (a 3 MiB
    /// gradient) 3.6 → 5.3 ms, 8×512×7×7 → 2048 (a 4 MiB partial, 49 positions per image)
    /// 4.9 → 5.4 ms.
    static let maximumGradientFloats = 1 << 18

    /// Fewest positions (`H·W`) an image needs for the product to beat OpenBLAS's GEMMs over
    /// the images read in place (which, since their blocks stopped grouping images of 128
    /// columns or more, run one GEMM per image or band). Call-by-call pairs' median ratios,
    /// OpenBLAS ÷ product, 2 threads (Nov 27 2026): 56×56 1.24 (8×256 → 64), 1.005 (8×64 → 256);
    /// 28×28 1.09 (8×512 → 128); but 24×24 0.95 (8×256 → 256), 20×20 0.90 (8×256 → 512),
    /// 14×14 0.75–0.84 (8×512 → 512, 8×1024 → 256, 8×256 → 1024), 0.97 (8×256 → 256), and 7×7
    /// 0.99–1.00 (8×512 → 2048, 8×2048 → 512).
    static let minimumPositions = 28 * 28

    /// Whether this layer's planes are large enough (``minimumPositions``) and its gradient and
    /// partial sum small enough (see ``maximumGradientFloats``).
    var pays: Bool {
        let (gradient, gradientOverflow) = positions.multipliedReportingOverflow(by: filters)
        let (partial, partialOverflow) = geometry.channels.multipliedReportingOverflow(by: filters)
        return positions >= Self.minimumPositions && !gradientOverflow && !partialOverflow
            && gradient <= Self.maximumGradientFloats && partial <= Self.maximumGradientFloats
    }

    private var positions: Int { geometry.outputPlaneSize }
    private var imageWorkers: Int { geometry.imageWorkers(filters: filters) }
    /// Floats of one thread's slice: the transposed output gradient, then a partial `dWᵀ`.
    private var sliceCount: Int { positions * filters + geometry.channels * filters }
    /// Floats of workspace for ``run(input:outputGradient:weightGradient:workspace:)``.
    var workspaceCount: Int { max(1, imageWorkers) * sliceCount }

    /// `weightGradient = Σₙ dY[n] · X[n]ᵀ`, overwriting it.
    func run(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
             weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (positions, channels, filters) = (positions, g.channels, filters)
        let sum = ImageProductSum(batch: g.batch, imageWorkers: imageWorkers, imageWork: g.imageWork(filters: filters),
                                  rows: channels, rowLength: filters, sliceCount: sliceCount, partialOffset: positions * filters)
        // Rows of the transposed gradient: one per position, `F` floats each.
        let rows = (0..<positions).map { $0 * filters }
        let partial = rows.withUnsafeBufferPointer { rows in
            sum.run(workspace: workspace) { image, slice in
                VectorOperations.transpose(rows: filters, columns: positions, from: outputGradient + image * filters * positions,
                                           sourceStride: positions, to: slice, destinationStride: filters)
            } multiply: { image, slice, range, accumulate in
                product.multiply(m: range.count, n: filters, a: input + image * g.imageSize + range.lowerBound * positions,
                                 aRow: positions, aColumn: 1, b: slice, rowOffsets: rows,
                                 c: slice + positions * filters + range.lowerBound * filters, ldc: filters, accumulate: accumulate,
                                 streamsA: true)
            }
        }
        // By runs of 16 channels across cores (each writes its own columns of `dW`).
        Parallel.forEach((channels + 15) / 16, workPerItem: 16 * filters) { runs in
            let first = 16 * runs.lowerBound, count = min(channels, 16 * runs.upperBound) - 16 * runs.lowerBound
            VectorOperations.transpose(rows: count, columns: filters, from: partial + first * filters, sourceStride: filters,
                                       to: weightGradient + first, destinationStride: channels)
        }
    }
}
