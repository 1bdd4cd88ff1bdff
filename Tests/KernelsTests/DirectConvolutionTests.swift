import Testing
@testable import Kernels

/// The direct kernel takes the forward pass of layers with ≤ 4 input channels and ≤ 160
/// taps, and of stride-1 layers with a 5×5 or larger kernel and ≤ 64 filters. These cases are
/// built to land on it and to hit every edge of its layout: output widths around its blocks
/// (8-lane vectors in 16-column blocks with AVX2, 16-lane vectors in blocks of up to 64 with
/// AVX-512), filter counts around its 6-filter blocks, strides 1–3 (column phases), dilation,
/// asymmetric and large padding, one image (rows split across cores) and several (images split
/// across cores). Each is compared with the float64 reference.
@Suite struct DirectConvolutionTests {
    struct Case: CustomStringConvertible {
        var input: [Int]
        var filters: Int
        var kernel: Size2D
        var stride = Size2D(1)
        var padding = Size2D(0)
        var dilation = Size2D(1)
        var description: String { "\(input) → \(filters) k\(kernel) s\(stride) p\(padding) d\(dilation)" }
    }

    static func cases() -> [Case] {
        var result: [Case] = [
            Case(input: [100, 1, 28, 28], filters: 30, kernel: 5),                        // dlfs-simpleconv
            Case(input: [2, 3, 32, 32], filters: 16, kernel: 3, padding: 1),              // 24 + 8 columns
            Case(input: [1, 3, 40, 46], filters: 5, kernel: 7, stride: 2, padding: 3),    // stem-like, 23 columns
            Case(input: [3, 2, 9, 57], filters: 9, kernel: 3, stride: 3, padding: 2),     // three phases
            Case(input: [1, 4, 11, 30], filters: 4, kernel: Size2D(height: 2, width: 5), dilation: Size2D(height: 3, width: 2)),
            Case(input: [2, 1, 1, 1], filters: 1, kernel: 1),                             // one pixel, one lane
            Case(input: [1, 1, 3, 4], filters: 3, kernel: 3, padding: Size2D(height: 4, width: 5)), // padding beyond the image
            Case(input: [2, 3, 17, 25], filters: 7, kernel: Size2D(height: 1, width: 3), stride: Size2D(height: 2, width: 1),
                 padding: Size2D(height: 0, width: 1)),
            Case(input: [1, 32, 9, 21], filters: 64, kernel: 5, padding: 2),             // 5×5, many channels
            Case(input: [1, 16, 12, 20], filters: 17, kernel: 7, padding: 3),            // 7×7 (784 taps)
            // The AVX-512 weight gradient by filters (≥ 128 taps, several images): 40 filters make
            // 3 vectors (8 padding lanes) and 200 taps end in a partial block of 6; 9 filters, 1 vector.
            Case(input: [3, 8, 10, 37], filters: 40, kernel: 5, padding: 2),
            Case(input: [2, 12, 7, 19], filters: 9, kernel: 5, padding: 1),
            // AVX-512 blocks of 1–4 vectors: 69 = 64 + 5, 42 = 32 + 10, 50 = 48 + 2 columns.
            Case(input: [1, 2, 5, 71], filters: 7, kernel: 3),
            Case(input: [2, 3, 6, 42], filters: 8, kernel: 3, padding: 1),
            Case(input: [1, 1, 4, 52], filters: 13, kernel: Size2D(height: 1, width: 3)),
            Case(input: [3, 9, 10, 14], filters: 11, kernel: Size2D(height: 5, width: 6), padding: Size2D(height: 1, width: 0),
                 dilation: Size2D(height: 1, width: 2)),
        ]
        var generator = SeededGenerator(seed: 61)
        for _ in 0..<12 {
            let kernel = Size2D(height: Int.random(in: 1...5, using: &generator), width: Int.random(in: 1...5, using: &generator))
            let stride = Size2D(height: Int.random(in: 1...3, using: &generator), width: Int.random(in: 1...3, using: &generator))
            let dilation = Size2D(height: Int.random(in: 1...2, using: &generator), width: Int.random(in: 1...2, using: &generator))
            let padding = Size2D(height: Int.random(in: 0...3, using: &generator), width: Int.random(in: 0...3, using: &generator))
            let height = max(1, dilation.height * (kernel.height - 1) + 1 - 2 * padding.height) + Int.random(in: 0...20, using: &generator)
            let width = max(1, dilation.width * (kernel.width - 1) + 1 - 2 * padding.width) + Int.random(in: 0...60, using: &generator)
            result.append(Case(input: [Int.random(in: 1...3, using: &generator), Int.random(in: 1...4, using: &generator), height, width],
                               filters: Int.random(in: 1...13, using: &generator), kernel: kernel,
                               stride: stride, padding: padding, dilation: dilation))
        }
        return result
    }

    func layer(_ c: Case) -> Conv2D { Conv2D(stride: c.stride, padding: c.padding, dilation: c.dilation) }

    func weightShape(_ c: Case) -> [Int] { [c.filters, c.input[1], c.kernel.height, c.kernel.width] }

    /// Random input, weight and bias for a case.
    func operands(_ c: Case, using generator: inout SeededGenerator) -> (x: Tensor, w: Tensor, b: Tensor) {
        (Tensor.random(c.input, using: &generator), Tensor.random(weightShape(c), using: &generator),
         Tensor.random([c.filters], using: &generator))
    }

    @Test func casesReallyTakeTheDirectPath() throws {
        // On CPUs without AVX2 + FMA (arm64 servers) every layer must fall back to im2col + GEMM.
        for c in Self.cases() {
            let engine = try layer(c).makeEngine(input: c.input, weight: weightShape(c))
            #expect((engine.forwardDirect != nil) == DirectConvolution.isSupported, "\(c)")
        }
    }

    @Test func forwardMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 62)
        for c in Self.cases() {
            let (x, w, b) = operands(c, using: &generator)
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let expected = Reference.conv2d(x, w, nil, params)
            let y = try layer(c).forward(x, weight: w)
            #expect(y.shape == expected.shape, "\(c)")
            #expect(relativeError(y.scalars, expected.values) <= 2e-4, "\(c)")
            // With a bias: the same sums plus each filter's bias (the kernel adds it at the end).
            let plane = expected.shape[2] * expected.shape[3]
            let expectedWithBias = expected.values.enumerated().map { index, value in
                value + Double(b.scalars[(index / plane) % c.filters])
            }
            let biased = try layer(c).forward(x, weight: w, bias: b)
            #expect(relativeError(biased.scalars, expectedWithBias) <= 2e-4, "\(c) with bias")
        }
    }

    @Test func everyInstructionSetMatchesTheReference() throws {
        // The layers run the widest build this CPU has; here each build it runs (AVX2, and
        // AVX-512 where present) is called directly on the same cases, forward and weight gradient.
        var generator = SeededGenerator(seed: 67)
        for c in Self.cases() {
            let (x, w, b) = operands(c, using: &generator)
            guard var direct = try layer(c).makeEngine(input: c.input, weight: w.shape).forwardDirect else { continue }
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let expected = Reference.conv2d(x, w, b, params)
            let dy = Tensor.random(expected.shape, using: &generator)
            let expectedGradient = Reference.conv2dWeightGradient(dy, x, weightShape: w.shape, params)
            for instructionSet in DirectConvolution.InstructionSet.allCases where instructionSet.isSupported {
                direct.instructionSet = instructionSet
                let output = forwardOutput(direct, x: x, w: w, b: b, outputCount: expected.values.count)
                #expect(relativeError(output, expected.values) <= 2e-4, "\(c) \(instructionSet)")

                var gradient = [Float](repeating: .nan, count: w.scalars.count)
                var workspace = [Float](repeating: .nan, count: direct.weightGradientWorkspaceCount)
                x.withPointer { x in
                    dy.withPointer { dy in
                        direct.weightGradient(input: x, outputGradient: dy, weightGradient: &gradient, workspace: &workspace)
                    }
                }
                #expect(relativeError(gradient, expectedGradient) <= 2e-4, "\(c) \(instructionSet) weight gradient")
            }
        }
    }

    /// Stride-1 layers whose backward-data pass (the rotated kernel, channels swapped) lands on
    /// the direct kernel too: large kernels with 8–64 channels, and layers with ≤ 4 filters.
    static let backwardDataCases: [Case] = [
        Case(input: [2, 32, 11, 23], filters: 32, kernel: 5, padding: 2),             // 5×5, same size
        Case(input: [1, 16, 12, 20], filters: 16, kernel: 7, padding: 3),             // 7×7
        Case(input: [2, 9, 14, 19], filters: 12, kernel: Size2D(height: 5, width: 6), padding: Size2D(height: 1, width: 0),
             dilation: Size2D(height: 2, width: 1)),                                   // dilated, unpadded width
        Case(input: [3, 7, 9, 30], filters: 3, kernel: 3, padding: 1),                 // 3 filters: few channels back
    ]

    /// Winograd layers with few filters (8–16), on AVX2-only CPUs: their backward-data pass runs
    /// the direct kernel on the rotated kernels (that few channels); forward and weight gradient
    /// stay Winograd's. Elsewhere the same layers run Winograd or im2col throughout.
    @Test func fewFilterWinogradLayersRunBackwardDataDirect() throws {
        var generator = SeededGenerator(seed: 67)
        let cases = [
            Case(input: [2, 32, 9, 11], filters: 8, kernel: 3, padding: 1),
            Case(input: [3, 20, 10, 7], filters: 16, kernel: 3, padding: Size2D(height: 2, width: 0)),
        ]
        for c in cases {
            let engine = try layer(c).makeEngine(input: c.input, weight: weightShape(c))
            let direct = engine.usesWinograd && DirectConvolution.isSupported
                && c.filters <= DirectConvolution.maximumFewChannels(stride: c.stride)
            #expect((engine.winogradBackwardDataDirect != nil) == direct, "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape(c), using: &generator)
            let dy = Tensor.random(try layer(c).outputShape(input: x.shape, weight: w.shape), using: &generator)
            let gradients = try layer(c).backward(dy, input: x, weight: w)
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            #expect(relativeError(gradients.input.scalars, Reference.convTranspose2d(dy, w, nil, params, outputPadding: 0).values) <= 2e-4,
                    "\(c)")
            #expect(relativeError(gradients.weight.scalars, Reference.conv2dWeightGradient(dy, x, weightShape: w.shape, params)) <= 2e-4,
                    "\(c)")
        }
    }

    @Test func backwardDataMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 64)
        for c in Self.backwardDataCases {
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape(c), using: &generator)
            #expect(try (layer(c).makeEngine(input: c.input, weight: w.shape).backwardDataDirect != nil) == DirectConvolution.isSupported, "\(c)")
            let dy = Tensor.random(try layer(c).outputShape(input: x.shape, weight: w.shape), using: &generator)
            let dx = try layer(c).inputGradient(dy, inputShape: x.shape, weight: w)
            // dX of a stride-1 convolution is the transposed convolution of dY with the same weight.
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let expected = Reference.convTranspose2d(dy, w, nil, params, outputPadding: 0)
            #expect(dx.shape == expected.shape, "\(c)")
            #expect(relativeError(dx.scalars, expected.values) <= 2e-4, "\(c)")
        }
        // Not for strides above 1, or where the rotated kernel would not fit the gradient.
        #expect(try Conv2D(stride: 2, padding: 2).makeEngine(input: [1, 16, 12, 12], weight: [16, 16, 5, 5]).backwardDataDirect == nil)
        #expect(try Conv2D(padding: 5).makeEngine(input: [1, 16, 12, 12], weight: [16, 16, 5, 5]).backwardDataDirect == nil)
    }

    @Test func weightGradientMatchesTheReference() throws {
        // The direct path computes dW wherever it computes the forward pass.
        var generator = SeededGenerator(seed: 65)
        for c in Self.cases() + Self.backwardDataCases {
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape(c), using: &generator)
            let dy = Tensor.random(try layer(c).outputShape(input: x.shape, weight: w.shape), using: &generator)
            let dw = try layer(c).weightGradient(dy, input: x, weightShape: w.shape)
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let expected = Reference.conv2dWeightGradient(dy, x, weightShape: w.shape, params)
            #expect(relativeError(dw.scalars, expected) <= 2e-4, "\(c)")
        }
    }

    /// The weight gradient over a channel-last copy (kernel rows of 64+ floats), through the
    /// engine and by each product kernel this CPU runs: several
    /// images split across threads, channel counts whose rows are off the cache line, filters
    /// past a block of 6, rectangular kernels (1×7 and 7×1 too) and unequal padding, layers the
    /// direct kernel does not take (many filters, 3×3 with too few filters for Winograd), one
    /// image, dilated layers (down, across, both) and strided ones; the same bits on a second call.
    @Test func channelLastWeightGradientMatchesTheReference() throws {
        let cases = [
            Case(input: [4, 12, 20, 23], filters: 13, kernel: Size2D(height: 5, width: 7), padding: Size2D(height: 1, width: 3)),
            Case(input: [3, 16, 18, 16], filters: 16, kernel: 7, padding: 3),
            Case(input: [2, 32, 9, 11], filters: 8, kernel: 5, padding: Size2D(height: 2, width: 0)),
            Case(input: [3, 24, 13, 11], filters: 70, kernel: 5, padding: 2),
            Case(input: [1, 64, 9, 10], filters: 7, kernel: 3, padding: 1),
            Case(input: [2, 72, 6, 9], filters: 20, kernel: Size2D(height: 1, width: 7), padding: Size2D(height: 0, width: 3)),
            Case(input: [2, 64, 12, 5], filters: 9, kernel: Size2D(height: 7, width: 1), padding: Size2D(height: 3, width: 0)),
            // Dilated: one product per tap (its 64+ channels), not per kernel row.
            Case(input: [3, 64, 14, 13], filters: 20, kernel: 3, padding: 2, dilation: 2),
            Case(input: [2, 80, 12, 15], filters: 33, kernel: 3, padding: Size2D(height: 1, width: 3),
                 dilation: Size2D(height: 1, width: 3)),
            Case(input: [2, 64, 13, 12], filters: 12, kernel: Size2D(height: 3, width: 2), padding: 2,
                 dilation: Size2D(height: 2, width: 1)),
            // Strided: rows of `B` every other pixel (or row).
            Case(input: [3, 32, 15, 14], filters: 20, kernel: 3, stride: 2, padding: 1),
            Case(input: [2, 64, 11, 13], filters: 9, kernel: 5, stride: Size2D(height: 1, width: 2), padding: 2),
            Case(input: [2, 24, 17, 16], filters: 16, kernel: Size2D(height: 3, width: 4), stride: Size2D(height: 3, width: 2),
                 padding: Size2D(height: 1, width: 0)),
        ]
        var generator = SeededGenerator(seed: 66)
        for c in cases {
            let engine = try layer(c).makeEngine(input: c.input, weight: weightShape(c))
            #expect((engine.channelLastWeightGradient != nil) == (ChannelLastWeightGradient.product(for: engine.geometry) != nil), "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let dy = Tensor.random(try layer(c).outputShape(input: c.input, weight: weightShape(c)), using: &generator)
            let dw = try layer(c).weightGradient(dy, input: x, weightShape: weightShape(c))
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let expected = Reference.conv2dWeightGradient(dy, x, weightShape: weightShape(c), params)
            #expect(relativeError(dw.scalars, expected) <= 2e-4, "\(c)")
            #expect(try layer(c).weightGradient(dy, input: x, weightShape: weightShape(c)).scalars == dw.scalars, "\(c)")
            // Directly, by every build of the product kernel this CPU runs (the engine picks one).
            for instructionSet in DirectConvolution.InstructionSet.allCases.filter(\.isSupported) {
                let channelLast = ChannelLastWeightGradient(geometry: engine.geometry, filters: c.filters,
                                                            product: ProductKernel(instructionSet: instructionSet))
                var direct = [Float](repeating: .nan, count: dw.scalars.count)
                var workspace = [Float](repeating: .nan, count: channelLast.workspaceCount)
                x.withPointer { x in
                    dy.withPointer { dy in channelLast.run(input: x, outputGradient: dy, weightGradient: &direct, workspace: &workspace) }
                }
                #expect(relativeError(direct, expected) <= 2e-4, "\(c) \(instructionSet)")
            }
        }
    }

    @Test func columnsNoWindowReachesNeverReachTheOutput() throws {
        // Width 13, 3×3, stride 4: windows end at column 10, and each output row is 3 lanes of
        // an 8-lane vector. Infinities in columns 11 and 12 would turn up in the output if the
        // padded copy kept them and a lane past the row's end were stored (over the next row
        // or the next filter's plane) instead of masked off, or summed into the weight gradient.
        let conv = Conv2D(stride: 4)
        var generator = SeededGenerator(seed: 66)
        var scalars = Tensor.random([2, 3, 9, 13], using: &generator).scalars
        for index in scalars.indices where index % 13 >= 11 { scalars[index] = .infinity }
        let x = try Tensor(shape: [2, 3, 9, 13], scalars: scalars)
        let w = Tensor.random([7, 3, 3, 3], using: &generator)
        #expect(try (conv.makeEngine(input: x.shape, weight: w.shape).forwardDirect != nil) == DirectConvolution.isSupported)
        let y = try conv.forward(x, weight: w)
        #expect(y.scalars.allSatisfy { $0.isFinite })
        // The weight gradient's last vector of each row is a masked load: its lanes must read zero.
        let dy = Tensor.random(y.shape, using: &generator)
        #expect(try conv.weightGradient(dy, input: x, weightShape: w.shape).scalars.allSatisfy { $0.isFinite })
    }

    @Test func forwardEqualsTheIm2ColPath() throws {
        // The pure-Swift backend never takes the direct path: same sums, another order.
        var generator = SeededGenerator(seed: 63)
        for c in Self.cases().prefix(8) {
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape(c), using: &generator)
            var im2colLayer = layer(c)
            im2colLayer.backend = .swiftBlocked
            #expect(try im2colLayer.makeEngine(input: c.input, weight: w.shape).forwardDirect == nil)
            let direct = try layer(c).forward(x, weight: w)
            let im2col = try im2colLayer.forward(x, weight: w)
            #expect(relativeError(direct.scalars, im2col.scalars) <= 1e-5, "\(c)")
        }
    }

    @Test func otherLayersKeepTheirAlgorithms() throws {
        // Small kernels with more channels than ``maximumFewChannels`` (4 with AVX-512, 16 at
        // stride 1 and 8 at stride 2 with AVX2 only), stride-2 3×3 layers, large kernels with
        // many filters or taps, and strides beyond the phase split stay on im2col + GEMM (or Winograd).
        let conv = Conv2D(padding: 1)
        let few = DirectConvolution.maximumFewChannels(stride: 1), fewStrided = DirectConvolution.maximumFewChannels(stride: 2)
        #expect(try conv.makeEngine(input: [1, few + 1, 8, 8], weight: [4, few + 1, 3, 3]).forwardDirect == nil)
        #expect(try (conv.makeEngine(input: [1, few, 8, 8], weight: [4, few, 3, 3]).forwardDirect != nil) == DirectConvolution.isSupported)
        #expect(try Conv2D(stride: 2, padding: 1).makeEngine(input: [1, fewStrided + 1, 9, 9], weight: [4, fewStrided + 1, 3, 3])
                    .forwardDirect == nil)
        #expect(try Conv2D(stride: 2, padding: 1).makeEngine(input: [1, 64, 9, 9], weight: [128, 64, 3, 3]).forwardDirect == nil)
        #expect(try conv.makeEngine(input: [1, 32, 9, 9], weight: [65, 32, 5, 5]).forwardDirect == nil)
        #expect(try conv.makeEngine(input: [1, 48, 9, 9], weight: [8, 48, 5, 5]).forwardDirect == nil)
        #expect(try Conv2D(stride: 2).makeEngine(input: [1, 8, 20, 20], weight: [8, 8, 5, 5]).forwardDirect == nil)
        #expect(try Conv2D(stride: 9).makeEngine(input: [1, 1, 20, 20], weight: [4, 1, 1, 1]).forwardDirect == nil)
    }
}
