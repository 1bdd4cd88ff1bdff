import Testing
@testable import Kernels

/// The phase-split forward pass and weight gradient of strided layers (AVX-512 CPUs) against the
/// float64 reference: stride 2 and 3, a rectangular stride, dilation, odd (1 and 3), even and no
/// padding, odd widths, partial blocks of 6 filters, one image (filters split across cores) and
/// several (images split), and several images through one copy buffer (its zero padding
/// written once); and stride-1 layers with a small weight (forward and backward-data).
@Suite struct ImplicitConvolutionTests {
    static let cases: [Case] = [
        ([3, 6, 48, 48], 7, 3, 2, 1, 1),                                          // resnet-like stride 2
        ([1, 8, 50, 47], 13, 3, 2, 1, 1),                                         // one image, odd width
        ([2, 5, 76, 70], 6, Size2D(height: 3, width: 5), 3, Size2D(height: 0, width: 2), 2),
        ([2, 9, 40, 70], 11, 3, Size2D(height: 2, width: 1), 1, 1),               // stride 2 down, 1 across
        ([2, 6, 51, 49], 7, 3, 2, Size2D(height: 1, width: 2), 1),                // even padding across, odd width
        ([1, 5, 56, 57], 6, 3, 2, 0, 1),                                          // no padding
        ([2, 6, 40, 75], 6, 5, 2, Size2D(height: 2, width: 3), 1),                // odd padding past one pixel, 2 steps of 32
    ] + strideOneCases

    /// Stride-1 layers with a small weight that neither Winograd (too few filters, dilation) nor
    /// the direct kernel (too many filters) takes; their backward-data pass runs here too.
    static let strideOneCases: [Case] = [
        ([2, 20, 24, 26], 10, 3, 1, 1, 1),                                        // 3×3, too few filters for Winograd
        ([2, 8, 30, 28], 12, 3, 1, 2, 2),                                         // dilated
        ([1, 6, 22, 26], 70, 5, 1, 2, 1),                                         // one image, 70 filters
        ([3, 9, 21, 19], 17, Size2D(height: 3, width: 5), 1, Size2D(height: 0, width: 2), 1),
    ]

    typealias Case = (input: [Int], filters: Int, kernel: Size2D, stride: Size2D, padding: Size2D, dilation: Size2D)

    /// The layer of a case, its weight's shape, and the phase-split passes its engine runs.
    static func layer(_ c: Case) throws -> (conv: Conv2D, weightShape: [Int], implicit: ImplicitConvolution?) {
        let conv = Conv2D(stride: c.stride, padding: c.padding, dilation: c.dilation)
        let weightShape = [c.filters, c.input[1], c.kernel.height, c.kernel.width]
        return (conv, weightShape, try conv.makeEngine(input: c.input, weight: weightShape).forwardImplicit)
    }

    @Test func forwardMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 93)
        for c in Self.cases {
            let (conv, weightShape, implicit) = try Self.layer(c)
            // On AVX-512 CPUs these layers take the phase-split pass; elsewhere im2col (the
            // same expectations hold either way).
            #expect((implicit != nil) == (ProductKernel.preferred != nil), "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape, using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let y = try conv.forward(x, weight: w, bias: b)
            let expected = Reference.conv2d(x, w, b, Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation))
            #expect(y.shape == expected.shape, "\(c)")
            #expect(relativeError(y.scalars, expected.values) <= 2e-4, "\(c)")
        }
    }

    /// The weight gradient over the same copy, one product per tap: the same cases (one image:
    /// channels split across cores; several: per-thread partial sums), overwriting whatever the
    /// gradient held, and the same bits on a second call.
    @Test func weightGradientMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 94)
        for c in Self.cases {
            let (conv, weightShape, implicit) = try Self.layer(c)
            #expect((implicit?.weightGradientPays ?? false) == (ProductKernel.preferred != nil), "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let outputShape = try conv.outputShape(input: c.input, weight: weightShape)
            let dy = Tensor.random(outputShape, using: &generator)
            let dw = try conv.weightGradient(dy, input: x, weightShape: weightShape)
            let expected = Reference.conv2dWeightGradient(dy, x, weightShape: weightShape,
                                                          Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation))
            #expect(dw.shape == weightShape, "\(c)")
            #expect(relativeError(dw.scalars, expected) <= 2e-4, "\(c)")
            #expect(try conv.weightGradient(dy, input: x, weightShape: weightShape).scalars == dw.scalars, "\(c)")
        }
    }

    /// The backward-data pass of the stride-1 cases, as a forward pass over the output
    /// gradient with the kernels rotated: against the transposed convolution's reference.
    @Test func strideOneBackwardDataMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 95)
        for c in Self.strideOneCases {
            let (conv, weightShape, _) = try Self.layer(c)
            let engine = try conv.makeEngine(input: c.input, weight: weightShape)
            #expect((engine.backwardDataImplicit != nil) == (ProductKernel.preferred != nil), "\(c)")
            let w = Tensor.random(weightShape, using: &generator)
            let dy = Tensor.random(try conv.outputShape(input: c.input, weight: weightShape), using: &generator)
            let dx = try conv.inputGradient(dy, inputShape: c.input, weight: w)
            let expected = Reference.convTranspose2d(dy, w, nil, Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation),
                                                     outputPadding: 0)
            #expect(expected.shape == c.input, "\(c)")
            #expect(relativeError(dx.scalars, expected.values) <= 2e-4, "\(c)")
        }
    }
}
