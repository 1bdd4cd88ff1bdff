import Testing
@testable import Kernels

@Suite struct ConvTranspose2DTests {
    /// A random transposed-convolution case: output padding below the stride or the dilation.
    static func draw(_ generator: inout SeededGenerator) -> (RandomGeometry, Size2D) {
        while true {
            let geometry = RandomGeometry.draw(&generator)
            let p = geometry.params
            let outputPadding = Size2D(
                height: Int.random(in: 0..<max(p.stride.height, p.dilation.height), using: &generator),
                width: Int.random(in: 0..<max(p.stride.width, p.dilation.width), using: &generator))
            let oh = Reference.transposedLength(geometry.height, geometry.kernel.height, p.stride.height, p.padding.height,
                                                p.dilation.height, outputPadding: outputPadding.height)
            let ow = Reference.transposedLength(geometry.width, geometry.kernel.width, p.stride.width, p.padding.width,
                                                p.dilation.width, outputPadding: outputPadding.width)
            if oh >= 1, ow >= 1 { return (geometry, outputPadding) }
        }
    }

    @Test func forwardMatchesScatterDefinition() throws {
        var generator = SeededGenerator(seed: 31)
        for trial in 0..<50 {
            let (geometry, outputPadding) = Self.draw(&generator)
            // Weight [Cin, Cout, KH, KW]: the RandomGeometry's channels are Cin, filters Cout.
            let x = Tensor.random(geometry.inputShape, using: &generator)
            let w = Tensor.random([geometry.channels, geometry.filters, geometry.kernel.height, geometry.kernel.width], using: &generator)
            let b = trial.isMultiple(of: 2) ? Tensor.random([geometry.filters], using: &generator) : nil
            let layer = ConvTranspose2D(stride: geometry.params.stride, padding: geometry.params.padding,
                                        outputPadding: outputPadding, dilation: geometry.params.dilation)
            let z = try layer.forward(x, weight: w, bias: b)
            let reference = Reference.convTranspose2d(x, w, b, geometry.params, outputPadding: outputPadding)
            #expect(z.shape == reference.shape, "\(geometry) outputPadding \(outputPadding)")
            #expect(relativeError(z.scalars, reference.values) <= 2e-4, "\(geometry) outputPadding \(outputPadding)")
        }
    }

    @Test func isTheAdjointOfConvolution() throws {
        // ⟨conv(y, w), x⟩ = ⟨y, convT(x, w)⟩ when convT's output has conv's input shape.
        var generator = SeededGenerator(seed: 32)
        for _ in 0..<40 {
            let geometry = RandomGeometry.draw(&generator)
            let p = geometry.params
            let conv = Conv2D(stride: p.stride, padding: p.padding, dilation: p.dilation)
            let w = Tensor.random(geometry.weightShape, using: &generator)   // [F, C, KH, KW] = [Cin of convT, Cout of convT, ...]
            let y = Tensor.random(geometry.inputShape, using: &generator)
            let convOutput = try conv.forward(y, weight: w)
            let x = Tensor.random(convOutput.shape, using: &generator)
            // Output padding recovers the rows conv's floor division dropped.
            let outputPadding = Size2D(
                height: geometry.height - Reference.transposedLength(x.shape[2], geometry.kernel.height, p.stride.height,
                                                                     p.padding.height, p.dilation.height, outputPadding: 0),
                width: geometry.width - Reference.transposedLength(x.shape[3], geometry.kernel.width, p.stride.width,
                                                                   p.padding.width, p.dilation.width, outputPadding: 0))
            guard outputPadding.height < max(p.stride.height, p.dilation.height),
                  outputPadding.width < max(p.stride.width, p.dilation.width) else { continue }
            let transposed = try ConvTranspose2D(stride: p.stride, padding: p.padding, outputPadding: outputPadding,
                                                 dilation: p.dilation).forward(x, weight: w)
            #expect(transposed.shape == y.shape, "\(geometry)")
            let left = dot(convOutput.scalars, x.scalars)
            let right = dot(y.scalars, transposed.scalars)
            #expect(abs(left - right) <= 1e-4 * max(1, abs(left)), "\(geometry): \(left) vs \(right)")
        }
    }

    @Test func gradientsMatchFiniteDifferences() throws {
        var generator = SeededGenerator(seed: 33)
        for _ in 0..<20 {
            let (geometry, outputPadding) = Self.draw(&generator)
            let x = Tensor.random(geometry.inputShape, using: &generator)
            let w = Tensor.random([geometry.channels, geometry.filters, geometry.kernel.height, geometry.kernel.width], using: &generator)
            let b = Tensor.random([geometry.filters], using: &generator)
            let layer = ConvTranspose2D(stride: geometry.params.stride, padding: geometry.params.padding,
                                        outputPadding: outputPadding, dilation: geometry.params.dilation)
            let r = Tensor.random(try layer.outputShape(input: x.shape, weight: w.shape), using: &generator)
            let g = try layer.backward(r, input: x, weight: w)
            #expect(g.input.shape == x.shape && g.weight.shape == w.shape && g.bias.shape == [geometry.filters])
            Reference.checkGradients(g, x: x, w: w, b: b, using: &generator, context: "\(geometry) outputPadding \(outputPadding)") { xs, ws, bs in
                let z = Reference.convTranspose2d(xs, x.shape, ws, w.shape, bs, geometry.params, outputPadding: outputPadding)
                return zip(z.values, r.scalars).reduce(0) { $0 + $1.0 * Double($1.1) }
            }
        }
    }

    @Test func upsamplingByTwoDoublesTheSize() throws {
        // The classic decoder layer: kernel 3, stride 2, padding 1, output padding 1 maps H to 2H.
        let layer = ConvTranspose2D(stride: 2, padding: 1, outputPadding: 1)
        #expect(try layer.outputShape(input: [2, 8, 7, 5], weight: [8, 4, 3, 3]) == [2, 4, 14, 10])
    }

    @Test func outputPaddingMustBeBelowStrideOrDilation() throws {
        let x = try Tensor(shape: [1, 1, 3, 3], repeating: 1)
        let w = try Tensor(shape: [1, 1, 3, 3], repeating: 1)
        expectKernelError("outputPadding") { _ = try ConvTranspose2D(stride: 2, outputPadding: 2).forward(x, weight: w) }
        // Allowed when it is below the dilation even though it equals the stride (as in PyTorch).
        let z = try ConvTranspose2D(stride: 1, outputPadding: 1, dilation: 2).forward(x, weight: w)
        #expect(z.shape == [1, 1, 8, 8])
    }
}
