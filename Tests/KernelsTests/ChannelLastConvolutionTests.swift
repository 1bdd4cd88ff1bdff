import Testing
@testable import Kernels

/// The channel-last forward pass against the float64 reference, run directly: filters not a
/// multiple of 16 (a partial vector) or of 64 (a narrower last block), output rows not a multiple
/// of 6 pixels, stride 2, dilation, rectangular kernels and padding, one image (its bands split
/// across cores) and several (images split, or grouped into bands), with and without a bias;
/// by every build of the kernel this CPU runs (AVX2, and AVX-512 where it has it).
@Suite struct ChannelLastConvolutionTests {
    typealias Case = (input: [Int], filters: Int, kernel: Size2D, stride: Size2D, padding: Size2D, dilation: Size2D)

    static let cases: [Case] = [
        ([2, 16, 20, 20], 64, 3, 1, 1, 1),
        ([3, 20, 17, 23], 70, 5, 1, 2, 1),                                        // 64 + a 16-wide block, 6 left over
        ([1, 9, 40, 41], 33, 7, 1, 3, 1),                                         // one image, partial vector
        ([2, 12, 19, 21], 130, Size2D(height: 3, width: 5), 2, Size2D(height: 1, width: 2), 1),
        ([2, 8, 24, 26], 20, 3, 1, 2, 2),                                         // dilated
        ([1, 64, 70, 9], 16, 3, Size2D(height: 1, width: 2), 0, 1),              // many bands, stride across
        ([5, 64, 8, 8], 1024, 3, 2, 1, 1),                                        // 2.4 MB of weight: images grouped, a short last group
        ([2, 64, 12, 64], 64, 3, 1, 1, 1),                                        // band copies: 2 bands of 8 and 4 rows
        ([2, 64, 30, 130], 64, 3, 2, 1, 1),                                       // band copies at stride 2, 3 bands
    ]

    @Test(arguments: DirectConvolution.InstructionSet.allCases.filter(\.isSupported))
    func forwardMatchesTheReference(instructionSet: DirectConvolution.InstructionSet) throws {
        var generator = SeededGenerator(seed: 131)
        for c in Self.cases {
            let g = try ConvGeometry(batch: c.input[0], channels: c.input[1], height: c.input[2], width: c.input[3],
                                     kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation)
            let convolution = ChannelLastConvolution(geometry: g, filters: c.filters, instructionSet: instructionSet)
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random([c.filters, c.input[1], c.kernel.height, c.kernel.width], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            // The float64 reference once per case (the slowest part of this suite under
            // ThreadSanitizer); with the bias, each filter's plane plus its bias.
            let withoutBias = Reference.conv2d(x, w, nil, Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)).values
            let withBiasAdded = withoutBias.indices.map { withoutBias[$0] + Double(b.scalars[$0 / g.outputPlaneSize % c.filters]) }
            for withBias in [true, false] {
                let output = forwardOutput(convolution, x: x, w: w, b: withBias ? b : nil,
                                           outputCount: g.batch * c.filters * g.outputPlaneSize)
                #expect(relativeError(output, withBias ? withBiasAdded : withoutBias) <= 2e-4,
                        "\(c) bias \(withBias) \(instructionSet)")
            }
        }
    }

    /// Layers the engine gives it (64+ channels and filters, stride 1, not Winograd's): forward
    /// and backward-data through `Conv2D`, against the reference.
    static let layers: [Case] = [
        ([2, 64, 12, 13], 64, 5, 1, 2, 1),                                        // 5×5
        ([1, 72, 11, 9], 80, 7, 1, 3, 1),                                         // one image, 7×7, partial blocks
        ([2, 64, 10, 12], 96, 3, 1, 2, 2),                                        // dilated 3×3
    ]

    /// `Conv2D`'s forward (with a bias) and backward-data passes of layer `c` against the float64 reference.
    static func expectForwardAndBackwardDataMatchTheReference(_ c: Case, conv: Conv2D, generator: inout SeededGenerator) throws {
        let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
        let x = Tensor.random(c.input, using: &generator)
        let w = Tensor.random([c.filters, c.input[1], c.kernel.height, c.kernel.width], using: &generator)
        let b = Tensor.random([c.filters], using: &generator)
        let y = try conv.forward(x, weight: w, bias: b)
        #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, params).values) <= 2e-4, "\(c)")
        let dy = Tensor.random(y.shape, using: &generator)
        let dx = try conv.inputGradient(dy, inputShape: c.input, weight: w)
        let expected = Reference.convTranspose2d(dy, w, nil, params, outputPadding: 0)
        #expect(relativeError(dx.scalars, expected.values) <= 2e-4, "\(c)")
    }

    @Test func conv2DRunsItAndMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 132)
        for c in Self.layers {
            let conv = Conv2D(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let weightShape = [c.filters, c.input[1], c.kernel.height, c.kernel.width]
            let engine = try conv.makeEngine(input: c.input, weight: weightShape)
            let runsHere = ChannelLastConvolution.isSupported
                && c.kernel.height * c.kernel.width >= ChannelLastConvolution.minimumTaps
            #expect((engine.forwardChannelLast != nil) == runsHere, "\(c)")
            #expect((engine.backwardDataChannelLast != nil) == runsHere, "\(c)")
            try Self.expectForwardAndBackwardDataMatchTheReference(c, conv: conv, generator: &generator)
        }
    }

    /// Layers of 32–63 channels or filters, which it takes on AVX2-only CPUs only (its
    /// ``ChannelLastConvolution/minimumChannels``), ahead of the direct kernel with 48+ channels
    /// or a 7×7 kernel (``ChannelLastConvolution/precedesDirect(_:)``): which pass runs here
    /// (the backward-data pass's channels are the layer's filters), and both against the reference.
    static let fewerChannelLayers: [(layer: Case, forward: Bool, backwardData: Bool)] = [
        (([2, 48, 12, 11], 32, 5, 1, 2, 1), true, false),                        // 48 channels: ahead of the direct kernel; 32 back
        (([1, 32, 10, 9], 40, 7, 1, 3, 1), true, true),                          // 7×7: ahead of it both ways
        (([2, 32, 12, 12], 32, 5, 1, 2, 1), false, false),                       // 32 and 32 at 5×5: not this kernel
        (([2, 32, 9, 10], 96, 5, 1, 2, 1), true, true),                          // 96 filters: past the direct kernel's 64
    ]

    @Test func conv2DRunsFewerChannelsOnAVX2() throws {
        var generator = SeededGenerator(seed: 134)
        let avx2Only = ChannelLastConvolution.isSupported && DirectConvolution.InstructionSet.widest != .avx512
        for (c, forward, backwardData) in Self.fewerChannelLayers {
            let conv = Conv2D(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let weightShape = [c.filters, c.input[1], c.kernel.height, c.kernel.width]
            let engine = try conv.makeEngine(input: c.input, weight: weightShape)
            #expect((engine.forwardChannelLast != nil) == (avx2Only && forward), "\(c)")
            #expect((engine.backwardDataChannelLast != nil) == (avx2Only && backwardData), "\(c)")
            // Winograd F(2×2, r×r) runs the passes it takes in its place (``LargeKernelWinograd``).
            if avx2Only && forward, engine.forwardLargeWinograd == nil, case .convolution(let convolution) = engine.forwardPath {
                #expect(convolution is ChannelLastConvolution, "\(c)")
            }
            try Self.expectForwardAndBackwardDataMatchTheReference(c, conv: conv, generator: &generator)
        }
    }

    /// Strided layers it takes (64+ channels and filters), through `Conv2D`, and one it leaves.
    static let stridedLayers: [(layer: Case, runsHere: Bool)] = [
        (([2, 64, 14, 14], 64, 3, 2, 1, 1), true),                               // 7×7 outputs
        (([2, 64, 32, 32], 80, 3, 2, 1, 1), true),                               // 16×16 outputs, a partial block
        (([1, 64, 21, 22], 64, Size2D(height: 3, width: 5), Size2D(height: 2, width: 3), 2, 1), true),
        (([1, 64, 56, 56], 128, 3, 2, 1, 1), true),                              // resnet-c3s2's shape, one image
        (([1, 256, 8, 8], 512, 3, 2, 1, 1), true),                               // 4.7 MB of weight
        (([2, 64, 16, 16], 32, 3, 2, 1, 1), false),                              // 32 filters
    ]

    /// Bands cover several images only where the weight is past 2 MiB and an image's output is
    /// small, and then every thread still gets a group.
    @Test func bandsGroupSmallImagesOverALargeWeight() throws {
        func imagesPerBand(_ input: [Int], filters: Int) throws -> Int {
            let g = try ConvGeometry(batch: input[0], channels: input[1], height: input[2], width: input[3],
                                     kernel: 3, stride: 2, padding: 1)
            return ChannelLastConvolution(geometry: g, filters: filters).imagesPerBand
        }
        let cores = Parallel.coreCount
        #expect(try imagesPerBand([8, 256, 14, 14], filters: 512) == (cores > 1 ? min(6, (8 + cores - 1) / cores) : 1))
        #expect(try imagesPerBand([5, 64, 8, 8], filters: 1024) == (cores > 1 ? min(16, (5 + cores - 1) / cores) : 1))
        #expect(try imagesPerBand([8, 64, 14, 14], filters: 128) == 1)                 // 295 KB of weight
        #expect(try imagesPerBand([8, 256, 28, 28], filters: 512) == 1)                // 14×14 outputs
        #expect(try imagesPerBand([1, 256, 14, 14], filters: 512) == 1)                // one image
    }

    /// A band's staging is 128 KiB, or 256 KiB over a weight past 1 MiB with more than 128
    /// filters (whose 128 KiB bands would hold at most 128 pixels).
    @Test func bandsWidenOverALargeWeightWithManyFilters() {
        // 14-pixel rows of 512 filters: 4 rows in 128 KiB, 9 in 256 KiB.
        #expect(ChannelLastConvolution.bandRows(rows: 14, width: 14, filtersPadded: 512, weightFloats: 1_179_648) == 9)
        #expect(ChannelLastConvolution.bandRows(rows: 14, width: 14, filtersPadded: 512, weightFloats: 1 << 18) == 4)
        // 96 filters over a 2.4 MB weight keep 128 KiB: 12 rows of 27 pixels.
        #expect(ChannelLastConvolution.bandRows(rows: 27, width: 27, filtersPadded: 96, weightFloats: 614_400) == 12)
        // Never fewer than one row, never more than the output has.
        #expect(ChannelLastConvolution.bandRows(rows: 5, width: 4096, filtersPadded: 512, weightFloats: 1 << 20) == 1)
        #expect(ChannelLastConvolution.bandRows(rows: 3, width: 7, filtersPadded: 256, weightFloats: 1 << 20) == 3)
    }

    /// Each thread copies one band's rows at a time only where images are split across threads
    /// and the rows bands share are few.
    @Test func bandCopiesWhereBandsShareFewRows() throws {
        func usesBandCopies(_ input: [Int], filters: Int, kernel: Int, stride: Int, dilation: Int = 1) throws -> Bool {
            let g = try ConvGeometry(batch: input[0], channels: input[1], height: input[2], width: input[3],
                                     kernel: Size2D(kernel), stride: Size2D(stride), padding: Size2D(kernel / 2 * dilation),
                                     dilation: Size2D(dilation))
            return ChannelLastConvolution(geometry: g, filters: filters).usesBandCopies
        }
        let split = Parallel.coreCount > 1
        #expect(try usesBandCopies([2, 64, 12, 64], filters: 64, kernel: 3, stride: 1) == split)
        #expect(try usesBandCopies([8, 128, 56, 56], filters: 256, kernel: 3, stride: 2) == split)
        #expect(try !usesBandCopies([8, 96, 27, 27], filters: 256, kernel: 5, stride: 1))           // 4-row bands read 8
        #expect(try !usesBandCopies([8, 256, 28, 28], filters: 256, kernel: 3, stride: 1, dilation: 2))
        #expect(try !usesBandCopies([1, 128, 56, 56], filters: 256, kernel: 3, stride: 2))          // one image: bands split
        #expect(try !usesBandCopies([8, 64, 16, 16], filters: 64, kernel: 3, stride: 2))            // one band
    }

    @Test func conv2DRunsStridedLayersThatPay() throws {
        var generator = SeededGenerator(seed: 133)
        for (c, runsHere) in Self.stridedLayers {
            let conv = Conv2D(stride: c.stride, padding: c.padding, dilation: c.dilation)
            let weightShape = [c.filters, c.input[1], c.kernel.height, c.kernel.width]
            let engine = try conv.makeEngine(input: c.input, weight: weightShape)
            #expect((engine.forwardChannelLast != nil)
                        == (runsHere && ChannelLastConvolution.isSupported
                            && c.kernel.height * c.kernel.width >= ChannelLastConvolution.minimumTaps), "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape, using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let y = try conv.forward(x, weight: w, bias: b)
            let params = Reference.Params(stride: c.stride, padding: c.padding, dilation: c.dilation)
            #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, params).values) <= 2e-4, "\(c)")
        }
    }
}
