import KernelsSIMD

/// Winograd F(7×7, 2×2) for the forward pass of 3×3 stride-2 layers on AVX2-only CPUs.
///
/// A stride-2 layer is a stride-1 layer over the four phase sub-images of its padded input:
/// phase (ρ, σ) of channel c holds pixels (2t + ρ, 2u + σ), and with the kernel's taps
/// (2·dt + ρ, 2·du + σ) (zero past the 3×3's edge) as a 2×2 kernel,
///
///     y[i][j] = Σ_c Σ_(ρ,σ) Σ_(dt,du) k_(c,ρ,σ)[dt][du] · phase_(c,ρ,σ)[i + dt][j + du],
///
/// a 2×2 stride-1 layer of 4·C channels. That layer runs F(7×7, 2×2): 64 multiplies per
/// 7×7 output tile for each of the 4·C channels, 256 against the 441 (49 outputs × 9 taps) of
/// the 3×3 stride-2 layer, and the tile is a divisor of the ResNet stride-2 outputs (28, 14,
/// 7; the last two only with enough images, see ``minimumTiles``). As in ``LargeKernelWinograd`` the products summed over the 4·C channels are 64 GEMMs,
/// one per tile position ξ, `M_ξ = U_ξ · V_ξ`, all OpenBLAS's; the tile transforms are AVX2
/// kernels of Kernels' own (`WinogradStrideTwo.c`), which read each input tile straight from
/// the image (no phase-split copy) and number tiles across tile-rows and images, so a step's
/// eight lanes are full when a tile-row holds 4, 2 or 1 tiles.
///
/// Why: on AVX2 these layers went through im2col and OpenBLAS at about 90% of its sgemm rate,
/// about level with PyTorch's oneDNN forward on resnet-c3s2 (0.97–1.29× across runs); fewer
/// multiplies is what is left. The points are α = 8's (0, ±1, ±2, ±½, ∞), as F(2×2, 7×7)'s and
/// F(4×4, 5×5)'s; their error is measured in the tests against float64 loops.
///
/// Not on AVX-512 CPUs (their strided layers have the product kernels; not measured there).
struct StrideTwoWinograd: ForwardConvolution {
    let geometry: ConvGeometry
    let filters: Int
    /// Tiles per image down and across: ceil(output size / 7).
    let tilesHigh: Int
    let tilesWide: Int
    let imagesPerGroup: Int

    /// m: output tiles of 7 × 7.
    static let outputTile = 7
    /// α = m + 2 − 1 points per tile side; α² positions.
    static let points = 8
    static let positions = points * points

    var tilesPerImage: Int { tilesHigh * tilesWide }
    /// The GEMMs' depth: every channel's four phases.
    var depth: Int { 4 * geometry.channels }

    /// - Parameter maximumImagesPerGroup: a cap on the images transformed together (tests use it
    ///   to run several groups on small layers).
    init(geometry: ConvGeometry, filters: Int, maximumImagesPerGroup: Int = .max) {
        self.geometry = geometry
        self.filters = filters
        tilesHigh = (geometry.outputHeight + Self.outputTile - 1) / Self.outputTile
        tilesWide = (geometry.outputWidth + Self.outputTile - 1) / Self.outputTile
        let floatsPerImage = Self.positions * tilesHigh * tilesWide * (4 * geometry.channels + filters)
        imagesPerGroup = WinogradF2x3.imagesPerGroup(batch: geometry.batch, tilesPerImage: tilesHigh * tilesWide,
                                                     floatsPerImage: floatsPerImage, maximum: maximumImagesPerGroup)
    }

    /// The forward pass of a layer this runs (``applies(to:filters:)``); nil for any other.
    static func forwardPass(_ g: ConvGeometry, filters: Int) -> StrideTwoWinograd? {
        applies(to: g, filters: filters) ? StrideTwoWinograd(geometry: g, filters: filters) : nil
    }

    /// Fewest channels and filters, most multiplies as a fraction of the 3×3 layer's (tiles past
    /// the output's edge are multiplied too: outputs of 16 × 16, 3 × 3 tiles of 7, would save
    /// nothing), and fewest tiles in the batch (each transformed weight, 64 × 4 per 3×3 kernel,
    /// is written and read once a call and used once a tile). Call-by-call pairs on a 2-core
    /// AMD EPYC (Zen 3), im2col + OpenBLAS ÷ this, forward: 8×64×56×56 → 128 (resnet-c3s2)
    /// 1.12–1.14, 8×64×56×56 → 64 1.11, 8×96×56×56 → 128 1.16, 8×128×56×56 → 256 1.20,
    /// 4×64×112×112 → 128 1.18, 32×128×28×28 → 256 1.29, 16×64×28×28 → 128 (64 tiles) 1.08,
    /// 8×48×56×56 → 96 1.07, 8×64×64×64 → 128 (output 32×32, 0.69 of the multiplies) 1.03; at
    /// the limits 4×64×56×56 → 128 (64 tiles) 1.01, 8×32×56×56 → 64 1.00; below them
    /// 8×16×56×56 → 32 0.90, 8×128×28×28 → 256 (32 tiles) 0.82, 8×256×14×14 → 512 (8 tiles)
    /// 0.36, 16×32×32×32 → 64 (output 16×16) 0.67.
    static let minimumChannels = 48
    static let minimumFilters = 48
    static let maximumMultiplyFraction = 0.7
    static let minimumTiles = 64

    /// Whether this runs a layer's forward pass on this CPU: a 3×3 kernel, stride 2, no
    /// dilation, padding below the kernel, ``minimumChannels`` channels and ``minimumFilters``
    /// filters, enough tiles and few enough wasted ones, AVX2 without AVX-512.
    static func applies(to g: ConvGeometry, filters: Int) -> Bool {
        guard g.kernel == 3 && g.stride == 2 && g.dilation == 1
            && g.padding.height < 3 && g.padding.width < 3
            && g.channels >= minimumChannels && filters >= minimumFilters
            && kernels_simd_has_avx2_fma() && ProductKernel.preferred == nil
            // With ConvGeometry's cap of output planes at OpenBLAS's 32-bit index limit, keeps
            // the workspace arithmetic (64 planes of tiles × 4·channels) under 2^56.
            && g.channels + filters < 1 << 20 else { return false }
        let tiles = (g.outputHeight + outputTile - 1) / outputTile * ((g.outputWidth + outputTile - 1) / outputTile)
        return g.batch * tiles >= minimumTiles
            && Double(tiles * positions * 4) <= maximumMultiplyFraction * Double(9 * g.outputPlaneSize)
    }

    /// `T[ξ][tap] = G[a][k]·G[b][c]` for ξ = 8a + b and tap = 2k + c: F(7×7, 2×2)'s kernel
    /// transform `G k Gᵀ` as a 64 × 4 matrix acting on a 2×2 kernel's taps.
    static let transformMatrix = LargeKernelWinograd.makeTransformMatrix(kernelSize: 2, outputTile: outputTile)

    /// Distance between two planes of `U` (`[64][F][4·C]`).
    private var weightPlaneStride: Int { filters * depth + WinogradF2x3.planePadding }

    /// Floats of workspace: `U`, then `V` and `M` for one group of images.
    var workspaceCount: Int {
        let stride = WinogradF2x3.tileStride(imagesPerGroup * tilesPerImage)
        return Self.positions * (weightPlaneStride + WinogradF2x3.planeStride(depth, tiles: stride)
                                 + WinogradF2x3.planeStride(filters, tiles: stride))
    }

    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (filters, depth, positions, weightPlaneStride) = (filters, depth, Self.positions, weightPlaneStride)
        let groupStride = WinogradF2x3.tileStride(imagesPerGroup * tilesPerImage)
        let transformed = workspace + positions * weightPlaneStride
        let products = transformed + positions * WinogradF2x3.planeStride(depth, tiles: groupStride)
        GEMM.withSingleThreadedOpenBLAS {
            Self.transformMatrix.withUnsafeBufferPointer { matrix in
                Parallel.forEach(filters, workPerItem: depth * positions * 4) { range in
                    kernels_winograd_stride2_kernel_transform_avx2(weight, g.channels, range.lowerBound, range.count,
                                                                   matrix.baseAddress!, workspace, weightPlaneStride)
                }
            }
            for firstImage in stride(from: 0, to: g.batch, by: imagesPerGroup) {
                let images = min(imagesPerGroup, g.batch - firstImage)
                let tiles = images * tilesPerImage
                let stride = WinogradF2x3.tileStride(tiles)
                let inputPlane = WinogradF2x3.planeStride(depth, tiles: stride)
                let productPlane = WinogradF2x3.planeStride(filters, tiles: stride)
                Parallel.forEach(g.channels, workPerItem: tiles * positions * 4 * 8) { channels in
                    for channel in channels {
                        kernels_winograd_stride2_input_transform_avx2(
                            input + firstImage * g.imageSize + channel * g.inputPlaneSize, g.imageSize, g.height, g.width,
                            g.padding.height, g.padding.width, tilesHigh, tilesWide, tiles,
                            transformed + 4 * channel * stride, stride, inputPlane)
                    }
                }
                Parallel.forEachDynamic(positions, workPerItem: Parallel.minimumParallelWork) { _, position in
                    GEMMBackend.openBLAS.multiply(transposeA: false, transposeB: false, m: filters, n: tiles, k: depth,
                                                  alpha: 1, a: workspace + position * weightPlaneStride, lda: depth,
                                                  b: transformed + position * inputPlane, ldb: stride,
                                                  beta: 0, c: products + position * productPlane, ldc: stride)
                }
                let outputImage = filters * g.outputPlaneSize
                Parallel.forEach(filters, workPerItem: tiles * positions * 8) { range in
                    for filter in range {
                        kernels_winograd_stride2_output_transform_avx2(
                            products + filter * stride, productPlane, tiles, tilesHigh, tilesWide,
                            output + firstImage * outputImage + filter * g.outputPlaneSize, outputImage,
                            g.outputHeight, g.outputWidth, bias?[filter] ?? 0)
                    }
                }
            }
        }
    }
}
