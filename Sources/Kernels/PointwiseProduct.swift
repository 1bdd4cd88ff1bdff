import KernelsSIMD

/// The forward and backward-data passes of a 1×1, stride-1, unpadded layer on AVX-512 CPUs,
/// one ``ProductKernel`` call per image reading it in place: `Y[n] = W · X[n] + b` (`A` = the
/// weight, `F × C`, bias added as the kernel stores) and `dX[n] = Wᵀ · dY[n]` (`A` = the weight
/// read transposed where it lies). Through OpenBLAS each band of an image was a GEMM that packed
/// both operands first.
///
/// Only where it measured faster (see ``pays(rows:depth:)``). Minima of 5 alternating `prof`
/// runs, 2 threads: 8×256×56×56 → 64 forward 3.93 → 3.04 ms, 3×512×28×28 → 128 forward 1.49 →
/// 1.08, 1×256×56×56 → 64 forward 0.48 → 0.39, 8×64×56×56 → 256 backward-data 3.74 → 3.06.
struct PointwiseProduct {
    let geometry: ConvGeometry
    let filters: Int
    let product: ProductKernel

    private var positions: Int { geometry.outputPlaneSize }

    /// Whether a pass with `rows` output rows (filters forward, channels backward-data) summed
    /// over `depth` input rows runs faster here than through OpenBLAS: when every image's rows
    /// are a multiple of 16 floats (so the column blocks can start on cache lines, see
    /// ``run(rows:depth:a:aRow:aColumn:bias:source:destination:)``) and either the output has at
    /// most a quarter as many rows as the input, or the sum is at most 64 rows deep (OpenBLAS
    /// packs both operands for a product that short). Call-by-call pairs' median ratios against
    /// OpenBLAS, two threads: depth 32–64 forward 8×64×56×56 → 256 0.88, 8×32×56×56 → 128 0.93,
    /// 8×64×28×28 → 256 0.93, 1×64×56×56 → 256 0.84, 8×64×56×56 → 64 0.86 (backward-data 0.89),
    /// backward-data of 8×256×56×56 → 64 0.93; deeper, slower: 8×96×28×28 → 384 forward 0.965
    /// but 8×384×28×28 → 96 backward-data 1.04, 8×128×28×28 → 512 forward 1.02, 8×512×28×28 →
    /// 128 backward-data 1.07. Also slower: 8×2048×7×7 → 512 forward (49 positions) 3.14 →
    /// 3.97 ms, 8×1024×14×14 → 256 (196 positions, rows off the line) no faster.
    func pays(rows: Int, depth: Int) -> Bool {
        positions % 16 == 0 && (rows <= depth / 4 || depth <= Self.shallowDepth)
    }

    /// Deepest sum taken here whatever the number of output rows.
    static let shallowDepth = 64

    var forwardPays: Bool { pays(rows: filters, depth: geometry.channels) }
    var backwardDataPays: Bool { pays(rows: geometry.channels, depth: filters) }

    /// `output[n] = weight · input[n] + bias`.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>) {
        let g = geometry
        run(rows: filters, depth: g.channels, a: weight, aRow: g.channels, aColumn: 1, bias: bias,
            source: input, destination: output)
    }

    /// `inputGradient[n] = weightᵀ · outputGradient[n]`.
    func backwardData(outputGradient: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      inputGradient: UnsafeMutablePointer<Float>) {
        let g = geometry
        run(rows: g.channels, depth: filters, a: weight, aRow: 1, aColumn: g.channels, bias: nil,
            source: outputGradient, destination: inputGradient)
    }

    /// `destination[n] = A · source[n] (+ bias)` for every image, `A` being `rows × depth`.
    /// Work is cut into units of one image, or of part of one image's rows (in the kernel's row
    /// blocks) when the images do not divide evenly among the cores, so no core idles while
    /// another finishes a last image alone.
    private func run(rows: Int, depth: Int, a: UnsafePointer<Float>, aRow: Int, aColumn: Int, bias: UnsafePointer<Float>?,
                     source: UnsafePointer<Float>, destination: UnsafeMutablePointer<Float>) {
        let (batch, positions) = (geometry.batch, positions)
        let imageWork = rows * depth * positions
        let block = Int(KERNELS_DIRECT_FILTER_BLOCK)
        let rowBlocks = (rows + block - 1) / block
        let workers = Parallel.chunkCount(batch * rowBlocks, workPerItem: imageWork / rowBlocks)
        let parts = batch % workers == 0 ? 1 : min(rowBlocks, workers)
        let blocksPerPart = (rowBlocks + parts - 1) / parts
        let rowOffsets = (0..<depth).map { $0 * positions }
        rowOffsets.withUnsafeBufferPointer { rowOffsets in
            Parallel.forEachDynamic(batch * parts, workPerItem: imageWork / parts) { _, unit in
                let (image, part) = unit.quotientAndRemainder(dividingBy: parts)
                let first = min(rows, part * blocksPerPart * block)
                let count = min(rows, (part + 1) * blocksPerPart * block) - first
                guard count > 0 else { return }
                let b = source + image * depth * positions
                let c = destination + (image * rows + first) * positions
                // The rows all share the image's offset from a cache line, so after a narrow
                // first block every 64-column block starts on a line: loads that straddle two
                // lines made the kernel about 40% slower (57–78 against 141–148 GFLOP/s, 8 images
                // of 256 × 3136 times 64 rows, one thread), the prefetch missing each row's fifth line.
                let head = (64 - Int(bitPattern: b) & 63) % 64 / MemoryLayout<Float>.stride
                for (start, width) in [(0, min(head, positions)), (head, positions - head)] where width > 0 {
                    product.multiply(m: count, n: width, a: a + first * aRow, aRow: aRow, aColumn: aColumn,
                                     b: b + start, rowOffsets: rowOffsets, c: c + start, ldc: positions,
                                     bias: bias.map { $0 + first })
                }
            }
        }
    }
}
