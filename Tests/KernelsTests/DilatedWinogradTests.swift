import Testing
@testable import Kernels

/// Dilated 3×3 "same" layers by Winograd over the phase sub-images, against the float64
/// reference: dilations that divide the size and ones that do not (shorter phases zero-padded),
/// unequal dilations, a dilation as large as the size (one row a phase), phase blocks separate and
/// stacked along each axis, one chunk and one image a chunk; and through `Conv2D` and
/// `ConvTranspose2D`, where the engine gives it all passes.
@Suite struct DilatedWinogradTests {
    typealias Case = (input: [Int], filters: Int, dilation: Size2D)

    static let cases: [Case] = [
        ([2, 32, 12, 12], 32, 2),                                     // every phase 6×6
        ([3, 33, 11, 13], 40, 2),                                     // odd sizes: phases 6×7, 6×6, 5×7, 5×6
        ([1, 32, 10, 17], 36, 3),                                     // phases of 4 or 3 rows, 6 or 5 columns
        ([2, 34, 9, 14], 32, Size2D(height: 1, width: 4)),            // dilated along one axis
        ([1, 32, 4, 5], 32, 4),                                       // dilation 4 over 4 rows: one row a phase
    ]

    static func geometry(_ c: Case) throws -> ConvGeometry {
        try ConvGeometry(batch: c.input[0], channels: c.input[1], height: c.input[2], width: c.input[3],
                         kernel: 3, padding: c.dilation, dilation: c.dilation)
    }

    static func params(_ c: Case) -> Reference.Params { Reference.Params(padding: c.dilation, dilation: c.dilation) }

    /// Every way of laying out the phase blocks, and one image a chunk and all at once.
    static let variants: [(stacking: (rows: Bool, columns: Bool), maximumImagesPerChunk: Int)] =
        [(false, false), (false, true), (true, false), (true, true)].flatMap { stacking in [(stacking, .max), (stacking, 1)] }

    /// Separate blocks unless stacking them makes fewer tiles: 28 / 2 = 14 columns take 8 tiles
    /// a block either way (a tie), 65 / 4 = 17 take 12 apart and 36 for four stacked (71 wide).
    @Test func stacksPhaseBlocksWhereThatMakesFewerTiles() throws {
        let tie = try ConvGeometry(batch: 8, channels: 64, height: 28, width: 28, kernel: 3, padding: 2, dilation: 2)
        let tieLayout = DilatedWinograd(geometry: tie, filters: 64)
        #expect(!tieLayout.rows.isStacked && !tieLayout.columns.isStacked)
        #expect(tieLayout.imagesPerImage == 4 && tieLayout.rows.length == 14)
        let wide = try ConvGeometry(batch: 2, channels: 64, height: 28, width: 65, kernel: 3, padding: 4, dilation: 4)
        let wideLayout = DilatedWinograd(geometry: wide, filters: 64)
        #expect(!wideLayout.rows.isStacked && wideLayout.columns.isStacked)
        #expect(wideLayout.imagesPerImage == 4 && wideLayout.columns.length == 71)
    }

    @Test func appliesToSameSizeDilatedLayersOnly() throws {
        func applies(_ input: [Int], _ filters: Int, kernel: Size2D = 3, stride: Size2D = 1, padding: Size2D, dilation: Size2D) throws -> Bool {
            let g = try ConvGeometry(batch: input[0], channels: input[1], height: input[2], width: input[3],
                                     kernel: kernel, stride: stride, padding: padding, dilation: dilation)
            return DilatedWinograd.applies(to: g, filters: filters)
        }
        #expect(try applies([8, 256, 28, 28], 256, padding: 2, dilation: 2))
        #expect(try applies([1, 64, 65, 33], 64, padding: 4, dilation: 4))
        #expect(try !applies([8, 256, 28, 28], 256, padding: 1, dilation: 1))        // undilated: Winograd itself
        #expect(try !applies([8, 256, 28, 28], 256, padding: 1, dilation: 2))        // not "same": phases differ in padding
        #expect(try !applies([8, 256, 28, 28], 256, stride: 2, padding: 2, dilation: 2))
        #expect(try !applies([8, 256, 28, 28], 256, kernel: 5, padding: 4, dilation: 2))
        #expect(try !applies([8, 16, 28, 28], 256, padding: 2, dilation: 2))         // 16 channels
        #expect(try !applies([8, 256, 28, 28], 16, padding: 2, dilation: 2))         // 16 filters
        #expect(try !applies([1, 32, 5, 40], 32, padding: 8, dilation: 8))           // dilation past the height
        #expect(try applies([1, 32, 5, 40], 32, padding: 5, dilation: 5))
    }

    /// A dilation far past the image (padding equal to it) is a valid layer; asking for its
    /// workspace or running it never traps in the sizing of phase blocks.
    @Test func hugeDilationsDoNotOverflow() throws {
        for dilation in [1 << 20, 1 << 30, 1 << 40] {
            let conv = Conv2D(padding: Size2D(dilation), dilation: Size2D(dilation))
            let input = [0, 32, 5, 6], weight = [32, 32, 3, 3]
            do {
                #expect(try conv.workspaceByteCount(input: input, weight: weight) >= 0, "\(dilation)")
            } catch let error as KernelError {
                #expect(!error.argument.isEmpty, "\(dilation)")
            }
        }
        // Run once: the only tap inside the image is the centre one, a 1×1 convolution.
        var generator = SeededGenerator(seed: 185)
        let conv = Conv2D(padding: Size2D(1 << 20), dilation: Size2D(1 << 20))
        let x = Tensor.random([1, 32, 5, 6], using: &generator)
        let w = Tensor.random([32, 32, 3, 3], using: &generator)
        let y = try conv.forward(x, weight: w)
        let params = Reference.Params(padding: Size2D(1 << 20), dilation: Size2D(1 << 20))
        #expect(relativeError(y.scalars, Reference.conv2d(x, w, nil, params).values) <= 2e-4)
    }

    @Test func forwardMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 181)
        for c in Self.cases {
            let g = try Self.geometry(c)
            #expect(DilatedWinograd.applies(to: g, filters: c.filters), "\(c)")
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random([c.filters, c.input[1], 3, 3], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let expected = Reference.conv2d(x, w, b, Self.params(c)).values
            for (stacking, maximumImagesPerChunk) in Self.variants {
                let dilated = DilatedWinograd(geometry: g, filters: c.filters, maximumImagesPerChunk: maximumImagesPerChunk,
                                              stacking: stacking)
                let output = forwardOutput(dilated, x: x, w: w, b: b, outputCount: g.batch * c.filters * g.outputPlaneSize)
                #expect(relativeError(output, expected) <= 2e-4, "\(c) stacking \(stacking) images per chunk \(maximumImagesPerChunk)")
            }
        }
    }

    @Test func weightGradientMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 182)
        for c in Self.cases {
            let g = try Self.geometry(c)
            let x = Tensor.random(c.input, using: &generator)
            let weightShape = [c.filters, c.input[1], 3, 3]
            let dy = Tensor.random([g.batch, c.filters, g.outputHeight, g.outputWidth], using: &generator)
            let expected = Reference.conv2dWeightGradient(dy, x, weightShape: weightShape, Self.params(c))
            // One image a chunk carries the sum across chunks.
            for (stacking, maximumImagesPerChunk) in Self.variants {
                let dilated = DilatedWinograd(geometry: g, filters: c.filters, maximumImagesPerChunk: maximumImagesPerChunk,
                                              stacking: stacking)
                var gradient = [Float](repeating: .nan, count: weightShape.reduce(1, *))
                var workspace = [Float](repeating: .nan, count: dilated.workspaceCount)
                x.withPointer { x in
                    dy.withPointer { dy in
                        dilated.weightGradient(input: x, outputGradient: dy, weightGradient: &gradient, workspace: &workspace)
                    }
                }
                #expect(relativeError(gradient, expected) <= 2e-4, "\(c) stacking \(stacking) images per chunk \(maximumImagesPerChunk)")
            }
        }
    }

    /// The engine gives it all three passes (backward-data on the rotated kernels), and `Conv2D`'s
    /// results match the reference; layers it does not take (padding 1 with dilation 2; 16
    /// channels) still do.
    @Test func conv2DRunsItOnDilatedSameLayers() throws {
        var generator = SeededGenerator(seed: 183)
        let layers: [(Case, padding: Size2D)] = [
            (([2, 32, 12, 11], 40, 2), 2),
            (([1, 40, 13, 10], 32, 3), 3),
            (([2, 32, 12, 11], 40, 2), 1),
            (([2, 16, 12, 11], 40, 2), 2),
        ]
        for (c, padding) in layers {
            let conv = Conv2D(padding: padding, dilation: c.dilation)
            let weightShape = [c.filters, c.input[1], 3, 3]
            let engine = try conv.makeEngine(input: c.input, weight: weightShape)
            let runsHere = padding == c.dilation && c.input[1] >= 32
            #expect((engine.forwardDilatedWinograd != nil) == runsHere, "\(c)")
            #expect((engine.backwardDataDilatedWinograd != nil) == runsHere, "\(c)")
            if runsHere {
                guard case .convolution(let convolution) = engine.forwardPath, convolution is DilatedWinograd else {
                    Issue.record("\(c): the forward pass is not the dilated Winograd")
                    continue
                }
                guard case .rotated(let rotated) = engine.backwardDataPath, rotated is DilatedWinograd else {
                    Issue.record("\(c): the backward-data pass is not the dilated Winograd on the rotated kernels")
                    continue
                }
                guard case .dilatedWinograd = engine.weightGradientPath else {
                    Issue.record("\(c): the weight gradient is not the dilated Winograd's")
                    continue
                }
            }
            let params = Reference.Params(padding: padding, dilation: c.dilation)
            let x = Tensor.random(c.input, using: &generator)
            let w = Tensor.random(weightShape, using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let y = try conv.forward(x, weight: w, bias: b)
            #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, params).values) <= 2e-4, "\(c)")
            let dy = Tensor.random(y.shape, using: &generator)
            let gradients = try conv.backward(dy, input: x, weight: w)
            // The input gradient is the transposed convolution of dy.
            #expect(relativeError(gradients.input.scalars, Reference.convTranspose2d(dy, w, nil, params, outputPadding: 0).values)
                    <= 2e-4, "\(c)")
            #expect(relativeError(gradients.weight.scalars, Reference.conv2dWeightGradient(dy, x, weightShape: weightShape, params))
                    <= 2e-4, "\(c)")
        }
    }

    /// `ConvTranspose2D`'s forward pass is the convolution's backward-data pass: here the dilated
    /// Winograd on the rotated kernels.
    @Test func convTranspose2DMatchesTheReference() throws {
        var generator = SeededGenerator(seed: 184)
        let transposed = ConvTranspose2D(padding: 2, dilation: 2)
        let x = Tensor.random([2, 40, 11, 12], using: &generator)
        let w = Tensor.random([40, 32, 3, 3], using: &generator)
        let b = Tensor.random([32], using: &generator)
        let params = Reference.Params(padding: 2, dilation: 2)
        let y = try transposed.forward(x, weight: w, bias: b)
        #expect(relativeError(y.scalars, Reference.convTranspose2d(x, w, b, params, outputPadding: 0).values) <= 2e-4)
    }
}
