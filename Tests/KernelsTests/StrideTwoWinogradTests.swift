import Testing
import KernelsSIMD
@testable import Kernels

/// Winograd F(7×7, 2×2) on the phase sub-images of 3×3 stride-2 layers against the float64
/// reference: run directly on any CPU with AVX2 (outputs cut mid-tile, every padding below the
/// kernel, rectangular padding, odd channel counts, steps of eight tiles straddling tile-rows
/// and images, one image per group, with and without a bias), and through `Conv2D` where the
/// engine gives it the forward pass (AVX2-only CPUs).
@Suite struct StrideTwoWinogradTests {
    typealias Case = (input: [Int], filters: Int, padding: Size2D)

    static let cases: [Case] = [
        ([2, 16, 13, 13], 16, 1),                                     // output 7×7: one tile an image, one partial step
        ([3, 17, 29, 30], 20, 1),                                     // output 15×15: tiles of 1; an odd channel's phases alone
        ([1, 8, 56, 56], 9, 1),                                       // output 28×28: tiles inside the image, read in place
        ([2, 5, 40, 33], 7, Size2D(height: 0, width: 2)),             // rectangular padding: output 19×18
        ([4, 3, 9, 16], 4, 1),                                        // 1 × 2 tiles an image: a step across four images
        ([1, 4, 32, 32], 5, 0),                                       // unpadded, output 15×15
        ([2, 64, 28, 28], 32, 1),                                     // a sum over 256 phase channels
    ]

    static func geometry(_ c: Case) throws -> ConvGeometry {
        try ConvGeometry(batch: c.input[0], channels: c.input[1], height: c.input[2], width: c.input[3],
                         kernel: Size2D(3), stride: Size2D(2), padding: c.padding)
    }

    @Test func forwardMatchesTheReference() throws {
        guard kernels_simd_has_avx2_fma() else { return }
        var generator = SeededGenerator(seed: 181)
        for c in Self.cases {
            let g = try Self.geometry(c)
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random([c.filters, c.input[1], 3, 3], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let params = Reference.Params(stride: Size2D(2), padding: c.padding)
            let withoutBias = Reference.conv2d(x, w, nil, params).values
            let withBiasAdded = withoutBias.indices.map { withoutBias[$0] + Double(b.scalars[$0 / g.outputPlaneSize % c.filters]) }
            for maximumImagesPerGroup in [Int.max, 1] {
                let winograd = StrideTwoWinograd(geometry: g, filters: c.filters, maximumImagesPerGroup: maximumImagesPerGroup)
                for withBias in [true, false] {
                    let output = forwardOutput(winograd, x: x, w: w, b: withBias ? b : nil,
                                               outputCount: g.batch * c.filters * g.outputPlaneSize)
                    #expect(relativeError(output, withBias ? withBiasAdded : withoutBias) <= 2e-4,
                            "\(c) bias \(withBias) images per group \(maximumImagesPerGroup)")
                }
            }
        }
    }

    /// Which layers the engine gives it, and their forward results through `Conv2D` (the
    /// backward passes stay on their own paths, checked against the reference too).
    static let layers: [(layer: Case, runsHere: Bool)] = [
        (([4, 48, 56, 56], 48, 1), true),                             // 4 images × 16 tiles: the fewest tiles, channels, filters
        (([4, 48, 56, 56], 32, 1), false),                            // 32 filters
        (([8, 48, 32, 32], 48, 1), false),                            // output 16×16: 3 × 3 tiles of 7 for 256 outputs
        (([1, 48, 56, 56], 48, 1), false),                            // 16 tiles
    ]

    @Test func conv2DRunsItWhereItPays() throws {
        var generator = SeededGenerator(seed: 182)
        let avx2Only = kernels_simd_has_avx2_fma() && DirectConvolution.InstructionSet.widest != .avx512
        for (c, runsHere) in Self.layers {
            let conv = Conv2D(stride: Size2D(2), padding: c.padding)
            let engine = try conv.makeEngine(input: c.input, weight: [c.filters, c.input[1], 3, 3])
            #expect((engine.forwardStrideTwoWinograd != nil) == (avx2Only && runsHere), "\(c)")
            if avx2Only && runsHere {
                guard case .convolution(let convolution) = engine.forwardPath, convolution is StrideTwoWinograd else {
                    Issue.record("\(c): the forward pass is not Winograd's")
                    continue
                }
            }
            guard runsHere else { continue }
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random([c.filters, c.input[1], 3, 3], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let params = Reference.Params(stride: Size2D(2), padding: c.padding)
            let y = try conv.forward(x, weight: w, bias: b)
            #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, params).values) <= 2e-4, "\(c)")
        }
    }

    /// `ConvTranspose2D`'s backward-data pass is the convolution's forward pass: Winograd's here
    /// on AVX2-only CPUs.
    @Test func convTranspose2DInputGradientMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 183)
        let transposed = ConvTranspose2D(stride: Size2D(2), padding: Size2D(1))
        let x = Tensor.random([4, 48, 28, 28], using: &generator)
        let w = Tensor.random([48, 48, 3, 3], using: &generator)
        let y = try transposed.forward(x, weight: w, bias: nil)
        let dy = Tensor.random(y.shape, using: &generator)
        let g = try transposed.backward(dy, input: x, weight: w)
        let expected = Reference.conv2d(dy, w, nil, Reference.Params(stride: Size2D(2), padding: Size2D(1))).values
        #expect(relativeError(g.input.scalars, expected) <= 2e-4)
    }

    /// The kernel transform is F(7×7, 2×2)'s `G k Gᵀ` over the points 0, ±1, ±2, ±½ and ∞:
    /// row p of G is (1, p) over the product of p's distances to the other finite points.
    @Test func kernelTransformHasTheExactFractions() {
        let matrix = StrideTwoWinograd.transformMatrix
        #expect(matrix.count == 64 * 4)
        // Point 0: 1 / ((0 − 1)(0 + 1)(0 − 2)(0 + 2)(0 − ½)(0 + ½)) = −1 on tap 0, 0 on tap 1, so
        // ξ = 0 keeps tap 0 once; ξ = 63 (∞ twice) keeps tap 3.
        #expect(matrix[0..<4] == [1, 0, 0, 0])
        #expect(matrix[63 * 4..<64 * 4] == [0, 0, 0, 1])
        // ξ = 8·3 + 5 (points 2 and ½), tap 3 (1, 1): G[2][1]·G[½][1] = (2/90)·(½·32/45).
        #expect(abs(matrix[(8 * 3 + 5) * 4 + 3] - Float(2.0 / 90 * 16 / 45)) <= 1e-8)
    }
}
