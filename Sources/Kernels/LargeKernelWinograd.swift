import KernelsSIMD

/// Winograd F(m×m, r×r) for 5×5 and 7×7 stride-1 layers on AVX2-only CPUs: the forward pass,
/// the backward-data pass as a forward pass on the rotated kernels, and the weight gradient.
///
/// Each m×m output tile comes from an α×α input tile (α = r + m − 1) with α² multiplies per
/// channel pair instead of m²·r²: F(2×2, r×r) takes 36 for 100 (5×5) and 64 for 196 (7×7), and
/// the forward and backward-data passes of 5×5 layers take F(4×4, 5×5), 64 for 400 (its 8
/// points and input transform are F(2×2, 7×7)'s; the weight gradient stays on F(2×2, 5×5), the
/// only output-gradient transform written). Against F(2×2, 5×5), call-by-call pairs on
/// a 2-core AMD EPYC (Zen 3), forward / backward-data: 8×32×64×64 → 32 1.62 / 1.61,
/// 8×96×27×27 → 256 1.77 / 1.67, 8×32×56×56 → 96 1.64 / 1.66, 8×64×32×32 → 128 1.70 / 1.67: a
/// quarter as many input tiles to transform and 2.25× fewer multiplies. Its error against
/// F(2×2, 5×5) on those layers was 7e-6 to 1.3e-5 of the largest output. As in ``WinogradF2x3``
/// the products summed over channels are α² independent GEMMs, one per tile position ξ,
/// `M_ξ = U_ξ · V_ξ` with `U = G g Gᵀ` (`[α²][O][I]`) and `V = Bᵀ d B` (`[α²][I][tiles]`),
/// here all OpenBLAS's; the tile transforms are AVX2 kernels of Kernels' own
/// (`WinogradLargeTransforms.c`), the kernel transform one small GEMM.
///
/// Why: on AVX2 the channel-last kernel these layers ran on is at its loop's ceiling, about 10–25%
/// behind oneDNN's direct kernel in PyTorch (8×96×27×27 → 256 5×5 and 8×64×28×28 → 64 7×7 lost
/// to it every run); fewer multiplies is what is left. The points are 0, ±1, ±2 (and ±½ for
/// α = 8) and ∞, the usual ones for this α, whose error over 96 channels is about 1e-5 of the
/// largest output (measured in the tests against float64 loops; the library's tolerance is 2e-4).
///
/// Not on AVX-512 CPUs, where the channel-last kernel runs 16-float vectors and Winograd's
/// products would want the product kernel (not measured there).
struct LargeKernelWinograd: ForwardConvolution {
    let geometry: ConvGeometry
    let filters: Int
    /// r: 5 or 7.
    let kernelSize: Int
    /// m: output tiles of m × m, 2 (or 4 for the forward pass of a 5×5 kernel, F(4×4, 5×5)).
    let outputTile: Int
    /// α = r + m − 1 points per tile side.
    let points: Int
    /// Tiles per image down: ceil(outputHeight / m).
    let tilesHigh: Int
    /// Tiles stored per tile-row: ceil(outputWidth / m) rounded up to a multiple of 8, the
    /// transforms' step. The extra tiles read padding; their outputs are never stored.
    let tilesWide: Int
    let imagesPerGroup: Int

    /// α² transformed planes.
    var positions: Int { points * points }
    var tilesPerImage: Int { tilesHigh * tilesWide }

    /// - Parameter outputTile: m, 2 or (for 5×5 kernels, the forward pass only) 4.
    /// - Parameter maximumImagesPerGroup: a cap on the images transformed together (tests use it
    ///   to run several groups on small layers).
    init(geometry: ConvGeometry, filters: Int, outputTile: Int = 2, maximumImagesPerGroup: Int = .max) {
        self.geometry = geometry
        self.filters = filters
        kernelSize = geometry.kernel.height
        self.outputTile = outputTile
        points = kernelSize + outputTile - 1
        tilesHigh = (geometry.outputHeight + outputTile - 1) / outputTile
        tilesWide = ((geometry.outputWidth + outputTile - 1) / outputTile + 7) / 8 * 8
        let floatsPerImage = points * points * tilesHigh * tilesWide * (geometry.channels + filters)
        imagesPerGroup = WinogradF2x3.imagesPerGroup(batch: geometry.batch, tilesPerImage: tilesHigh * tilesWide,
                                                     floatsPerImage: floatsPerImage, maximum: maximumImagesPerGroup)
    }

    /// The forward pass of a layer this runs (``applies(to:filters:)``), with its output tile
    /// (``forwardOutputTile(kernelSize:)``); nil for any other.
    static func forwardPass(_ g: ConvGeometry, filters: Int) -> LargeKernelWinograd? {
        applies(to: g, filters: filters)
            ? LargeKernelWinograd(geometry: g, filters: filters, outputTile: forwardOutputTile(kernelSize: g.kernel.height)) : nil
    }

    /// The output tile of the forward pass (and of the backward-data pass, a forward pass on the
    /// rotated kernels): F(4×4, 5×5) for 5×5 kernels, F(2×2, 7×7) for 7×7 (F(4×4, 7×7) would need
    /// α = 10 points, and the error grows fast with each one).
    static func forwardOutputTile(kernelSize: Int) -> Int {
        kernelSize == 5 ? 4 : 2
    }

    /// Fewest channels, and fewest filters: below them the GEMMs' short sides and the transforms
    /// cost more than the multiplies saved. Call-by-call pairs on a 2-core AMD EPYC (Zen 3),
    /// this ÷ the direct or channel-last kernel and its products: 8×32×64×64 → 32 5×5 forward
    /// 0.90, backward-data 1.00, weight gradient 0.65, forward+backward 0.80; 8×32×28×28 → 32
    /// 7×7 0.94, 1.02, 0.84, 0.98; 8×32×56×56 → 64 7×7 0.97, 0.87, 0.70; 8×64×28×28 → 64 7×7
    /// 0.70 (0.87, then 0.80 of that from the input transform's columns), 0.88, 0.58;
    /// 8×96×27×27 → 256 5×5 0.64–0.67, 0.67, 0.58; but 8×16×64×64 → 16 7×7 1.39, 1.38, 1.05.
    /// With F(4×4, 5×5) for the forward and backward-data passes, 16–24 channels against the
    /// direct kernel: 8×16×64×64 → 16 0.82, 0.89, 0.94 but 8×16×32×32 → 32 1.14, 1.15, 1.00 and
    /// 8×24×28×28 → 24 1.38, 1.19, 1.10, so the minimum stays.
    static let minimumChannels = 32

    /// Whether this runs a layer on this CPU: a square 5×5 or 7×7 kernel, stride 1, no
    /// dilation, padding below the kernel (so the backward-data pass's `r − 1 − p` is not
    /// negative), ``minimumChannels`` channels and filters, AVX2 without AVX-512.
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        (g.kernel == 5 || g.kernel == 7) && g.stride == 1 && g.dilation == 1
            && g.padding.height < g.kernel.height && g.padding.width < g.kernel.width
            && g.channels >= minimumChannels && filters >= minimumChannels
            && kernels_simd_has_avx2_fma() && ProductKernel.preferred == nil
            // With ConvGeometry's cap of output planes at OpenBLAS's 32-bit index limit, keeps
            // the workspace arithmetic (64 planes of tiles × channels) under 2^56.
            && g.channels + filters < 1 << 20
    }

    /// Distance between two rows of `V` and `M`, and between two of their planes: as
    /// ``WinogradF2x3``'s (rows on cache lines, planes padded apart).
    private func tileStride(_ tiles: Int) -> Int { WinogradF2x3.tileStride(tiles) }
    private func planeStride(_ channels: Int, tiles: Int) -> Int { WinogradF2x3.planeStride(channels, tiles: tiles) }

    /// Distance between two planes of `U` (`[α²][O][I]`).
    private var weightPlaneStride: Int { filters * geometry.channels + WinogradF2x3.planePadding }

    /// Floats of workspace: `U`, then `V` and `M` for one group of images.
    var workspaceCount: Int {
        let stride = tileStride(imagesPerGroup * tilesPerImage)
        return positions * (weightPlaneStride + planeStride(geometry.channels, tiles: stride) + planeStride(filters, tiles: stride))
    }

    /// `T[ξ][tap] = G[a][k]·G[b][c]` for ξ = α·a + b and tap = r·k + c: the kernel transform
    /// `G g Gᵀ` as an α² × r² matrix acting on a kernel's taps. Row i of G (α × r) is point pᵢ's
    /// powers over the product of its distances to the other points; the point at ∞ keeps the
    /// last tap.
    static func transformMatrix(kernelSize r: Int, outputTile m: Int = 2) -> [Float] {
        r == 7 ? transformMatrix7 : m == 4 ? transformMatrix5By4 : transformMatrix5
    }

    private static let transformMatrix5 = makeTransformMatrix(kernelSize: 5, outputTile: 2)
    private static let transformMatrix7 = makeTransformMatrix(kernelSize: 7, outputTile: 2)
    private static let transformMatrix5By4 = makeTransformMatrix(kernelSize: 5, outputTile: 4)

    static func makeTransformMatrix(kernelSize r: Int, outputTile m: Int) -> [Float] {
        // The first α − 1 of these, and ∞: α = 8 has the same points for F(2, 7) and F(4, 5).
        let finite = Array(([0, 1, -1, 2, -2, 0.5, -0.5] as [Double]).prefix(r + m - 2))
        var g = finite.map { p in
            let scale = finite.filter { $0 != p }.reduce(1) { $0 * (p - $1) }
            return (0..<r).map { k in Float((0..<k).reduce(1.0) { product, _ in product * p } / scale) }
        }
        g.append((0..<r).map { $0 == r - 1 ? 1 : 0 })
        let points = r + m - 1
        var matrix = [Float](repeating: 0, count: points * points * r * r)
        for position in 0..<points * points {
            for tap in 0..<r * r {
                matrix[position * r * r + tap] = g[position / points][tap / r] * g[position % points][tap % r]
            }
        }
        return matrix
    }

    /// One group of images and the workspace carved for it: `U` (or `dU`) at the start, then `V`
    /// (`[α²][channels][stride]`) and `M` (`[α²][filters][stride]`) for its `tiles` tiles.
    private struct Group {
        let firstImage: Int
        let images: Int
        let tiles: Int
        /// Distance between two rows of `V` and `M` (``tileStride(_:)``).
        let stride: Int
        let transformed: UnsafeMutablePointer<Float>
        let inputPlane: Int
        let products: UnsafeMutablePointer<Float>
        let productPlane: Int
    }

    /// Calls `body` for consecutive groups of at most ``imagesPerGroup`` images, all through the
    /// same workspace, with OpenBLAS single-threaded and each step split across Kernels' threads
    /// instead (see ``WinogradF2x3``'s `withKernelsThreading`: an idle OpenBLAS worker spins
    /// against them).
    private func forEachGroup(workspace: UnsafeMutablePointer<Float>, _ body: (Group) -> Void) {
        let g = geometry
        let transformed = workspace + positions * weightPlaneStride
        let products = transformed + positions * planeStride(g.channels, tiles: tileStride(imagesPerGroup * tilesPerImage))
        for firstImage in stride(from: 0, to: g.batch, by: imagesPerGroup) {
            let images = min(imagesPerGroup, g.batch - firstImage)
            let tiles = images * tilesPerImage
            let stride = tileStride(tiles)
            body(Group(firstImage: firstImage, images: images, tiles: tiles, stride: stride,
                       transformed: transformed, inputPlane: planeStride(g.channels, tiles: stride),
                       products: products, productPlane: planeStride(filters, tiles: stride)))
        }
    }

    /// Runs `body(position)` for the α² positions, taken one at a time by Kernels' threads.
    private func forEachPosition(_ body: (Int) -> Void) {
        Parallel.forEachDynamic(positions, workPerItem: Parallel.minimumParallelWork) { _, position in body(position) }
    }

    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        GEMM.withSingleThreadedOpenBLAS {
            transformWeights(weight, into: workspace)
            forEachGroup(workspace: workspace) { group in
                transformInput(input + group.firstImage * g.imageSize, images: group.images, into: group.transformed,
                               rowStride: group.stride, planeStride: group.inputPlane)
                forEachPosition { position in
                    GEMMBackend.openBLAS.multiply(transposeA: false, transposeB: false, m: filters, n: group.tiles, k: g.channels,
                                                  alpha: 1, a: workspace + position * weightPlaneStride, lda: g.channels,
                                                  b: group.transformed + position * group.inputPlane, ldb: group.stride,
                                                  beta: 0, c: group.products + position * group.productPlane, ldc: group.stride)
                }
                transformOutput(group.products, images: group.images, rowStride: group.stride, planeStride: group.productPlane,
                                into: output + group.firstImage * filters * g.outputPlaneSize, bias: bias)
            }
        }
    }

    /// The gradient with respect to the kernels, given the input and the output gradient:
    ///
    ///     dg = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B) ] G
    ///
    /// the adjoint of ``forward(input:weight:bias:output:workspace:)`` with respect to `g`, as
    /// α² GEMMs `dU_ξ[o, i] += dM_ξ[o, t] · V_ξ[i, t]ᵀ` summed over the groups of images, then
    /// one GEMM with the kernel transform's matrix transposed. Tiles past the output's edge get
    /// a zero output gradient, so they add nothing. Call-by-call pairs on a 2-core AMD EPYC
    /// (Zen 3), channel-last products ÷ this: see Benchmarks/README.
    ///
    /// - Parameter weightGradient: `[filters, channels, r, r]`, overwritten.
    func weightGradient(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        precondition(outputTile == 2, "the weight gradient's output-gradient transform is F(2×2, r×r)'s")
        let g = geometry
        GEMM.withSingleThreadedOpenBLAS {
            // dU accumulates in U's place.
            forEachGroup(workspace: workspace) { group in
                transformInput(input + group.firstImage * g.imageSize, images: group.images, into: group.transformed,
                               rowStride: group.stride, planeStride: group.inputPlane)
                transformOutputGradient(outputGradient + group.firstImage * filters * g.outputPlaneSize, images: group.images,
                                        into: group.products, rowStride: group.stride, planeStride: group.productPlane)
                forEachPosition { position in
                    GEMMBackend.openBLAS.multiply(transposeA: false, transposeB: true, m: filters, n: g.channels, k: group.tiles,
                                                  alpha: 1, a: group.products + position * group.productPlane, lda: group.stride,
                                                  b: group.transformed + position * group.inputPlane, ldb: group.stride,
                                                  beta: group.firstImage == 0 ? 0 : 1,
                                                  c: workspace + position * weightPlaneStride, ldc: g.channels)
                }
            }
            untransformWeightGradient(workspace, into: weightGradient)
        }
    }

    /// `dg = Gᵀ dU G` for every kernel: `dg[(o,i)][tap] = Σ_ξ dU_ξ[o, i] · T[ξ][tap]`, GEMMs over
    /// runs of kernels split across Kernels' threads.
    private func untransformWeightGradient(_ transformed: UnsafePointer<Float>, into weightGradient: UnsafeMutablePointer<Float>) {
        let taps = kernelSize * kernelSize
        let (positions, planeStride) = (positions, weightPlaneStride)
        Self.transformMatrix(kernelSize: kernelSize, outputTile: outputTile).withUnsafeBufferPointer { matrix in
            Parallel.forEach(filters * geometry.channels, workPerItem: positions * taps) { kernels in
                GEMMBackend.openBLAS.multiply(transposeA: true, transposeB: false, m: kernels.count, n: taps, k: positions,
                                              alpha: 1, a: transformed + kernels.lowerBound, lda: planeStride,
                                              b: matrix.baseAddress!, ldb: taps,
                                              beta: 0, c: weightGradient + kernels.lowerBound * taps, ldc: taps)
            }
        }
    }

    /// `U_ξ = G g Gᵀ` for every kernel, as GEMMs `U = T · Wᵀ` over runs of kernels (the weight
    /// seen as an `(O·I) × r²` matrix), split across Kernels' threads.
    private func transformWeights(_ weight: UnsafePointer<Float>, into transformed: UnsafeMutablePointer<Float>) {
        let taps = kernelSize * kernelSize
        let (positions, planeStride) = (positions, weightPlaneStride)
        Self.transformMatrix(kernelSize: kernelSize, outputTile: outputTile).withUnsafeBufferPointer { matrix in
            Parallel.forEach(filters * geometry.channels, workPerItem: positions * taps) { kernels in
                GEMMBackend.openBLAS.multiply(transposeA: false, transposeB: true, m: positions, n: kernels.count, k: taps,
                                              alpha: 1, a: matrix.baseAddress!, lda: taps,
                                              b: weight + kernels.lowerBound * taps, ldb: taps,
                                              beta: 0, c: transformed + kernels.lowerBound, ldc: planeStride)
            }
        }
    }

    /// `V = Bᵀ d B` of every tile of `images` consecutive images, channels split across cores:
    /// channel `c`'s row of plane ξ at `transformed + ξ·planeStride + c·rowStride`, image after
    /// image, tile-row after tile-row.
    private func transformInput(_ images: UnsafePointer<Float>, images count: Int, into transformed: UnsafeMutablePointer<Float>,
                                rowStride: Int, planeStride: Int) {
        let g = geometry
        let (kernelSize, outputTile, tilesHigh, tilesWide, tilesPerImage) = (kernelSize, outputTile, tilesHigh, tilesWide, tilesPerImage)
        let scratchCount = kernels_winograd_large_input_scratch_count(kernelSize, outputTile, tilesWide)
        Parallel.forEach(g.channels, workPerItem: count * tilesPerImage * positions) { channels in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scratch.deallocate() }
            for channel in channels {
                for image in 0..<count {
                    kernels_winograd_large_input_transform_avx2(kernelSize, outputTile, images + image * g.imageSize + channel * g.inputPlaneSize,
                                                                g.height, g.width, g.padding.height, g.padding.width,
                                                                0, tilesHigh, tilesWide,
                                                                transformed + channel * rowStride + image * tilesPerImage,
                                                                planeStride, scratch)
                }
            }
        }
    }

    /// `dM = A dY Aᵀ` of every tile of `images` consecutive images' output gradients, laid out
    /// as ``transformInput(_:images:into:rowStride:planeStride:)`` lays out `V`.
    private func transformOutputGradient(_ gradient: UnsafePointer<Float>, images count: Int,
                                         into transformed: UnsafeMutablePointer<Float>, rowStride: Int, planeStride: Int) {
        let g = geometry
        let (kernelSize, tilesHigh, tilesWide) = (kernelSize, tilesHigh, tilesWide)
        forEachFilterPlane(images: count) { filter, image, filterSide, scratch in
            kernels_winograd_large_output_gradient_transform_avx2(kernelSize, gradient + filterSide, g.outputHeight, g.outputWidth,
                                                                  0, tilesHigh, tilesWide, transformed + filter * rowStride + image * tilesPerImage,
                                                                  planeStride, scratch)
        }
    }

    /// `Y = Aᵀ M A + bias` into the NCHW output of `images` consecutive images.
    private func transformOutput(_ products: UnsafePointer<Float>, images count: Int, rowStride: Int, planeStride: Int,
                                 into output: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?) {
        let g = geometry
        let (kernelSize, outputTile, tilesHigh, tilesWide) = (kernelSize, outputTile, tilesHigh, tilesWide)
        forEachFilterPlane(images: count) { filter, image, filterSide, scratch in
            kernels_winograd_large_output_transform_avx2(kernelSize, outputTile, products + filter * rowStride + image * tilesPerImage,
                                                         planeStride, 0, tilesHigh, tilesWide, output + filterSide,
                                                         g.outputHeight, g.outputWidth, bias?[filter] ?? 0, scratch)
        }
    }

    /// Runs `body(filter, image, filterSide, scratch)` for every filter plane of `images`
    /// consecutive images, `filterSide` being that plane's offset in their NCHW output (or
    /// output gradient): filters split across cores, each core with the m²·tilesWide floats of
    /// scratch the output-side transforms take.
    private func forEachFilterPlane(images count: Int,
                                    _ body: (_ filter: Int, _ image: Int, _ filterSide: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void) {
        let (filters, planeSize, scratchCount) = (filters, geometry.outputPlaneSize, outputTile * outputTile * tilesWide)
        Parallel.forEach(filters, workPerItem: count * tilesPerImage * positions) { filterRange in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scratch.deallocate() }
            for filter in filterRange {
                for image in 0..<count { body(filter, image, (image * filters + filter) * planeSize, scratch) }
            }
        }
    }
}
