import Testing
import KernelsSIMD
@testable import Kernels

/// Winograd F(2×2, 5×5) and F(2×2, 7×7) against the float64 reference: run directly on any CPU
/// with AVX2 (odd sizes with half tiles, every padding it takes, rectangular padding, more
/// tile-rows than one band of the input transform, one image per group over a batch, with and
/// without a bias), and through `Conv2D` where the engine gives it all three passes (AVX2-only
/// CPUs).
@Suite struct LargeKernelWinogradTests {
    typealias Case = (input: [Int], filters: Int, kernel: Int, padding: Size2D)

    static let cases: [Case] = [
        ([2, 32, 9, 11], 40, 5, 2),                                   // odd output: the last tile-row and column cut in half
        ([1, 33, 5, 5], 35, 5, 0),                                    // output 1×1
        ([3, 32, 6, 13], 64, 5, Size2D(height: 4, width: 1)),         // padding 4: the backward pass's 0
        ([2, 36, 12, 17], 32, 7, 3),
        ([1, 32, 7, 8], 33, 7, Size2D(height: 0, width: 6)),
        ([2, 34, 20, 35], 36, 7, 2),                                  // 18 tiles a row: three steps of 8, the last partial
        ([1, 32, 36, 41], 33, 5, Size2D(height: 2, width: 3)),        // 18 tile-rows: a band of 16, then 2; odd left padding
    ]

    static func geometry(_ c: Case) throws -> ConvGeometry {
        try ConvGeometry(batch: c.input[0], channels: c.input[1], height: c.input[2], width: c.input[3],
                         kernel: Size2D(c.kernel), padding: c.padding)
    }

    @Test func forwardMatchesTheReference() throws {
        guard kernels_simd_has_avx2_fma() else { return }
        var generator = SeededGenerator(seed: 171)
        for c in Self.cases {
            let g = try Self.geometry(c)
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random([c.filters, c.input[1], c.kernel, c.kernel], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let params = Reference.Params(padding: c.padding)
            let withoutBias = Reference.conv2d(x, w, nil, params).values
            let withBiasAdded = withoutBias.indices.map { withoutBias[$0] + Double(b.scalars[$0 / g.outputPlaneSize % c.filters]) }
            // Groups of every image at once, and of one image each; F(2×2, 5×5) and F(4×4, 5×5).
            for maximumImagesPerGroup in [Int.max, 1] {
              for outputTile in c.kernel == 5 ? [2, 4] : [2] {
                let winograd = LargeKernelWinograd(geometry: g, filters: c.filters, outputTile: outputTile,
                                                   maximumImagesPerGroup: maximumImagesPerGroup)
                for withBias in [true, false] {
                    let output = forwardOutput(winograd, x: x, w: w, b: withBias ? b : nil,
                                               outputCount: g.batch * c.filters * g.outputPlaneSize)
                    #expect(relativeError(output, withBias ? withBiasAdded : withoutBias) <= 2e-4,
                            "\(c) bias \(withBias) images per group \(maximumImagesPerGroup) output tile \(outputTile)")
                }
              }
            }
        }
    }

    @Test func weightGradientMatchesTheReference() throws {
        guard kernels_simd_has_avx2_fma() else { return }
        var generator = SeededGenerator(seed: 173)
        for c in Self.cases {
            let g = try Self.geometry(c)
            let x = Tensor.random(c.input, using: &generator)
            let weightShape = [c.filters, c.input[1], c.kernel, c.kernel]
            let dy = Tensor.random([g.batch, c.filters, g.outputHeight, g.outputWidth], using: &generator)
            let expected = Reference.conv2dWeightGradient(dy, x, weightShape: weightShape, Reference.Params(padding: c.padding))
            // One group, and one image a group (the sum carried across groups).
            for maximumImagesPerGroup in [Int.max, 1] {
                let winograd = LargeKernelWinograd(geometry: g, filters: c.filters, maximumImagesPerGroup: maximumImagesPerGroup)
                var gradient = [Float](repeating: .nan, count: weightShape.reduce(1, *))
                var workspace = [Float](repeating: .nan, count: winograd.workspaceCount)
                x.withPointer { x in
                    dy.withPointer { dy in
                        winograd.weightGradient(input: x, outputGradient: dy, weightGradient: &gradient, workspace: &workspace)
                    }
                }
                #expect(relativeError(gradient, expected) <= 2e-4, "\(c) images per group \(maximumImagesPerGroup)")
            }
        }
    }

    /// Which layers the engine gives it, all three passes (the backward-data pass has the layer's
    /// channels and filters swapped, the same sum), and their results through `Conv2D`.
    static let layers: [(layer: Case, runsHere: Bool)] = [
        (([2, 32, 10, 9], 64, 5, 2), true),
        (([2, 32, 10, 9], 32, 5, 2), true),                           // the fewest channels and filters
        (([1, 64, 9, 12], 64, 7, 3), true),
        (([1, 32, 9, 12], 16, 7, 3), false),                          // 16 filters: the direct kernel
        (([2, 16, 10, 9], 128, 5, 2), false),                         // 16 channels
        (([2, 64, 10, 9], 64, 3, 1), false),                          // 3×3: F(2×2, 3×3)'s
    ]

    @Test func conv2DRunsItWhereItPays() throws {
        var generator = SeededGenerator(seed: 172)
        let avx2Only = kernels_simd_has_avx2_fma() && DirectConvolution.InstructionSet.widest != .avx512
        for (c, runsHere) in Self.layers {
            let conv = Conv2D(padding: c.padding)
            let engine = try conv.makeEngine(input: c.input, weight: [c.filters, c.input[1], c.kernel, c.kernel])
            #expect((engine.forwardLargeWinograd != nil) == (avx2Only && runsHere), "\(c)")
            #expect((engine.backwardDataLargeWinograd != nil) == (avx2Only && runsHere), "\(c)")
            if avx2Only && runsHere {
                guard case .convolution(let convolution) = engine.forwardPath else {
                    Issue.record("\(c): the forward pass is not a convolution")
                    continue
                }
                #expect((convolution as? LargeKernelWinograd)?.outputTile == (c.kernel == 5 ? 4 : 2), "\(c)")
                guard case .rotated(let rotated) = engine.backwardDataPath else {
                    Issue.record("\(c): the backward-data pass is not on the rotated kernels")
                    continue
                }
                #expect((rotated as? LargeKernelWinograd)?.outputTile == (c.kernel == 5 ? 4 : 2), "\(c)")
                guard case .largeWinograd(let gradient) = engine.weightGradientPath, gradient.outputTile == 2 else {
                    Issue.record("\(c): the weight gradient is not Winograd's")
                    continue
                }
            }
            let layer = (input: c.input, filters: c.filters, kernel: Size2D(c.kernel), stride: Size2D(1), padding: c.padding,
                         dilation: Size2D(1))
            try ChannelLastConvolutionTests.expectForwardAndBackwardDataMatchTheReference(layer, conv: conv, generator: &generator)
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random([c.filters, c.input[1], c.kernel, c.kernel], using: &generator)
            let dy = Tensor.random(try conv.outputShape(input: x.shape, weight: w.shape), using: &generator)
            let dw = try conv.backward(dy, input: x, weight: w).weight
            let expected = Reference.conv2dWeightGradient(dy, x, weightShape: w.shape, Reference.Params(padding: c.padding))
            #expect(relativeError(dw.scalars, expected) <= 2e-4, "\(c)")
        }
    }

    /// `ConvTranspose2D` runs the engine the other way round: its forward pass is the
    /// convolution's backward-data pass (Winograd on the rotated kernels), its backward-data
    /// pass the convolution's forward pass, on AVX2-only CPUs both Winograd's here.
    @Test func convTranspose2DMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 174)
        for (input, outputChannels, kernel, padding) in [([2, 40, 9, 11], 32, 5, 2), ([1, 36, 8, 7], 33, 7, 4)] {
            let transposed = ConvTranspose2D(padding: Size2D(padding))
            let x = Tensor.random(input, using: &generator)
            let w = Tensor.random([input[1], outputChannels, kernel, kernel], using: &generator)
            let b = Tensor.random([outputChannels], using: &generator)
            let params = Reference.Params(padding: Size2D(padding))
            let y = try transposed.forward(x, weight: w, bias: b)
            #expect(relativeError(y.scalars, Reference.convTranspose2d(x, w, b, params, outputPadding: 0).values) <= 2e-4, "\(input)")
            let dy = Tensor.random(y.shape, using: &generator)
            let g = try transposed.backward(dy, input: x, weight: w)
            // The transposed layer's input gradient is the convolution of dy with the same weight.
            #expect(relativeError(g.input.scalars, Reference.conv2d(dy, w, nil, params).values) <= 2e-4, "\(input)")
        }
    }

    /// Shapes only asked about (batch 0, nothing allocated) at and past the validation's limits
    /// (output planes within OpenBLAS's 32-bit index): a workspace count or a thrown error, never
    /// a trap in the sizing of up to 64 planes of tiles × channels.
    @Test func hugeShapesOnlyAskedAboutDoNotOverflow() throws {
        let channels = (1 << 19) - 1
        for (side, kernel) in [(1 << 17, 5), (1 << 19, 7), ((1 << 20) - 1, 5), (1 << 20, 5)] {
            let conv = Conv2D(padding: Size2D(kernel / 2))
            let input = [0, channels, side, side], weight = [channels, channels, kernel, kernel]
            do {
                let bytes = try conv.workspaceByteCount(input: input, weight: weight)
                #expect(bytes >= 0, "\(input)")
            } catch let error as KernelError {
                #expect(!error.argument.isEmpty, "\(input)")
            }
        }
    }

    /// The kernel transform's rows for 5×5 are G's, `G g Gᵀ` with G the Lagrange basis over the
    /// points 0, ±1, ±2 and ∞ (Lavin & Gray's F(2, 5)): spot values checked against the
    /// exact fractions.
    @Test func kernelTransformHasTheExactFractions() {
        let matrix = LargeKernelWinograd.transformMatrix(kernelSize: 5)
        #expect(matrix.count == 36 * 25)
        // ξ = 0 (point 0 twice) keeps tap 0 scaled by (1/4)²; ξ = 35 (∞ twice) keeps tap 24.
        #expect(matrix[0] == 1.0 / 16)
        #expect(matrix[1..<25].allSatisfy { $0 == 0 })
        #expect(matrix[35 * 25 + 24] == 1)
        // ξ = 6·3 + 4 (points 2 and −2), tap 5·4 + 4: (2⁴/24)·((−2)⁴/24) = (2/3)².
        #expect(abs(matrix[22 * 25 + 24] - Float(4.0 / 9)) <= 1e-7)
        // F(4×4, 5×5): α = 8 points 0, ±1, ±2, ±½ and ∞. Point 0's row of G is
        // 1 / ((0 − 1)(0 + 1)(0 − 2)(0 + 2)(0 − ½)(0 + ½)) = −1 on tap 0, so ξ = 0 keeps tap 0 once;
        // ξ = 8·3 + 5 (points 2 and ½), tap 0: G[2][0]·G[½][0] with G[2][0] = 1/((2)(1)(3)(4)(3/2)(5/2))
        // = 1/90 and G[½][0] = 1/((½)(−½)(3/2)(−3/2)(5/2)(1)) = 32/45.
        let matrix4 = LargeKernelWinograd.transformMatrix(kernelSize: 5, outputTile: 4)
        #expect(matrix4.count == 64 * 25)
        #expect(matrix4[0] == 1)
        #expect(matrix4[1..<25].allSatisfy { $0 == 0 })
        #expect(matrix4[63 * 25 + 24] == 1)
        #expect(abs(matrix4[(8 * 3 + 5) * 25] - Float(1.0 / 90 * 32 / 45)) <= 1e-8)
    }
}
