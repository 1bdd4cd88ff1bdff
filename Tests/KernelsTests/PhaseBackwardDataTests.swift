import Testing
@testable import Kernels

/// The backward-data pass of stride-2 layers by output phases, against the float64 reference:
/// even and odd image sizes (phases of unequal size), kernels of 2×2 (one tap per phase), 3×3
/// and 5×5, no padding (taps reading above the output gradient), channels not a multiple of 16,
/// and a transposed convolution with output padding (an image row no output reaches).
@Suite struct PhaseBackwardDataTests {
    typealias Case = (input: [Int], filters: Int, kernel: Size2D, padding: Size2D)

    static let layers: [Case] = [
        ([2, 64, 14, 14], 64, 3, 1),
        ([2, 64, 13, 15], 80, 3, 1),                                              // odd sizes
        ([2, 72, 12, 12], 64, 2, 0),                                              // one tap per phase, 72 channels
        ([3, 64, 11, 10], 64, 5, 2),
        ([2, 64, 9, 9], 64, 3, 0),                                                // no padding
        ([2, 64, 10, 12], 64, Size2D(height: 3, width: 1), Size2D(height: 1, width: 0)),
        ([2, 64, 20, 20], 912, 3, 1),                                             // 2.1 MB of weight (past 2 MiB) over 10×10 phases
    ]

    @Test func inputGradientMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 141)
        for c in Self.layers {
            let conv = Conv2D(stride: 2, padding: c.padding)
            let weightShape = [c.filters, c.input[1], c.kernel.height, c.kernel.width]
            let engine = try conv.makeEngine(input: c.input, weight: weightShape)
            let runsHere = if case .phases = engine.backwardDataPath { true } else { false }
            #expect(runsHere == (ProductKernel.preferred != nil && c.input[0] >= Parallel.coreCount), "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape, using: &generator)
            let y = try conv.forward(x, weight: w)
            let dy = Tensor.random(y.shape, using: &generator)
            let dx = try conv.inputGradient(dy, inputShape: c.input, weight: w)
            // The rows and columns of the image no window's stride reaches are the transposed
            // convolution's output padding.
            let outputPadding = Size2D(height: c.input[2] - ((y.shape[2] - 1) * 2 - 2 * c.padding.height + c.kernel.height),
                                       width: c.input[3] - ((y.shape[3] - 1) * 2 - 2 * c.padding.width + c.kernel.width))
            let expected = Reference.convTranspose2d(dy, w, nil, Reference.Params(stride: 2, padding: c.padding, dilation: 1),
                                                     outputPadding: outputPadding)
            #expect(dx.shape == expected.shape, "\(c)")
            #expect(relativeError(dx.scalars, expected.values) <= 2e-4, "\(c)")
        }
    }

    /// Layers it leaves: a weight past 2 MiB over phases under 100 pixels, stride 1, 32 filters,
    /// dilation.
    @Test func leavesOtherLayers() throws {
        func runsHere(_ input: [Int], filters: Int, stride: Size2D, dilation: Size2D = 1) throws -> Bool {
            let conv = Conv2D(stride: stride, padding: 1, dilation: dilation)
            let engine = try conv.makeEngine(input: input, weight: [filters, input[1], 3, 3])
            if case .phases = engine.backwardDataPath { return true }
            return false
        }
        #expect(try !runsHere([8, 256, 14, 14], filters: 512, stride: 2))                    // 4.7 MB of weight, 7×7 phases
        #expect(try runsHere([8, 256, 28, 28], filters: 512, stride: 2) == (ProductKernel.preferred != nil))  // 14×14 phases
        #expect(try !runsHere([8, 64, 28, 28], filters: 64, stride: 1))
        #expect(try !runsHere([8, 64, 28, 28], filters: 32, stride: 2))
        #expect(try !runsHere([8, 64, 28, 28], filters: 64, stride: 2, dilation: 2))
        #expect(try runsHere([8, 64, 28, 28], filters: 64, stride: 2) == (ProductKernel.preferred != nil))
    }

    @Test func transposedConvolutionWithOutputPaddingMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 142)
        let deconv = ConvTranspose2D(stride: 2, padding: 1, outputPadding: 1)
        let x = Tensor.random([2, 64, 7, 7], using: &generator)
        let w = Tensor.random([64, 96, 3, 3], using: &generator)
        let b = Tensor.random([96], using: &generator)
        let y = try deconv.forward(x, weight: w, bias: b)
        let expected = Reference.convTranspose2d(x, w, b, Reference.Params(stride: 2, padding: 1, dilation: 1), outputPadding: 1)
        #expect(y.shape == expected.shape)
        #expect(relativeError(y.scalars, expected.values) <= 2e-4)
    }
}
