import Testing
@testable import Kernels

/// Winograd F(2×2, 3×3) takes over 3×3 stride-1 layers with ≥ 16 channels and ≥ 16 filters (8
/// without AVX-512); these
/// cases are built to land on it (odd and tiny sizes, every padding it accepts) and compare with
/// the float64 direct reference.
@Suite struct WinogradTests {
    static func cases() -> [(batch: Int, channels: Int, filters: Int, height: Int, width: Int, padding: Size2D)] {
        var generator = SeededGenerator(seed: 51)
        var result: [(Int, Int, Int, Int, Int, Size2D)] = [
            (1, 16, 16, 1, 1, Size2D(1)),        // one pixel, one partial tile
            (2, 17, 19, 5, 7, Size2D(1)),        // odd sizes: last tile row and column cut in half
            (1, 16, 20, 3, 3, Size2D(0)),        // output 1×1
            (3, 20, 16, 6, 4, Size2D(2)),        // padding 2: backward runs with padding 0
            (1, 24, 18, 8, 9, Size2D(height: 0, width: 2)),
            (2, 20, WinogradF2x3.minimumFilters, 9, 7, Size2D(1)),  // the fewest filters it takes (8 without AVX-512)
        ]
        for _ in 0..<6 {
            let padding = Size2D(height: Int.random(in: 0...2, using: &generator), width: Int.random(in: 0...2, using: &generator))
            result.append((Int.random(in: 1...3, using: &generator), Int.random(in: 16...24, using: &generator),
                           Int.random(in: 16...24, using: &generator),
                           Int.random(in: max(1, 3 - 2 * padding.height)...12, using: &generator),
                           Int.random(in: max(1, 3 - 2 * padding.width)...12, using: &generator), padding))
        }
        return result.map { (batch: $0.0, channels: $0.1, filters: $0.2, height: $0.3, width: $0.4, padding: $0.5) }
    }

    @Test func casesReallyTakeTheWinogradPath() throws {
        for c in Self.cases() {
            let conv = Conv2D(padding: c.padding)
            let engine = try conv.makeEngine(input: [c.batch, c.channels, c.height, c.width], weight: [c.filters, c.channels, 3, 3])
            #expect(engine.usesWinograd, "\(c)")
        }
        // One filter fewer, or 15 channels, and the layer goes elsewhere.
        let fewer = try Conv2D(padding: 1).makeEngine(input: [2, 20, 9, 7], weight: [WinogradF2x3.minimumFilters - 1, 20, 3, 3])
        #expect(!fewer.usesWinograd)
        #expect(try !Conv2D(padding: 1).makeEngine(input: [2, 15, 9, 7], weight: [16, 15, 3, 3]).usesWinograd)
    }

    /// Which product kernel a layer's passes get: AVX-512's wherever it runs; on AVX2-only CPUs
    /// the AVX2 one up to 96 → 96 channels, OpenBLAS past that.
    @Test func productKernelByWidth() throws {
        let avx512 = DirectConvolution.InstructionSet.avx512.isSupported
        let avx2 = DirectConvolution.InstructionSet.avx2.isSupported
        for (channels, filters, narrow) in [(64, 64, true), (96, 96, true), (64, 144, true), (97, 96, false), (128, 128, false)] {
            let engine = try Conv2D(padding: 1).makeEngine(input: [2, channels, 8, 8], weight: [filters, channels, 3, 3])
            let expected: DirectConvolution.InstructionSet? = avx512 ? .avx512 : avx2 && narrow ? .avx2 : nil
            #expect(engine.forwardWinograd.product?.instructionSet == expected, "\(channels) → \(filters)")
            #expect(engine.backwardDataWinograd.product?.instructionSet == expected, "\(channels) → \(filters)")
        }
    }

    /// All three passes with each way of multiplying: the backend's GEMM (nil) and each
    /// supported build of the product kernel, on layers that land on each way of splitting the
    /// batch: spans of whole images (the last one short), bands of tile-rows of large images, a
    /// single image split for the cores, and (wide layers) the groups; the weight gradient
    /// over more than one group of images (552 tiles an image, 4 images a group).
    @Test func everyProductPathMatchesTheReference() throws {
        let cases: [(batch: Int, channels: Int, filters: Int, size: Int, padding: Int, spans: Bool?)] = [
            (5, 16, 17, 6, 1, true),      // 12 tiles an image: spans of 2 images, then 1
            (5, 16, 16, 46, 1, true),     // 552 tiles an image: bands of tile-rows
            (1, 20, 16, 20, 0, true),     // one image: split into bands for the cores
            (2, 131, 129, 5, 1, false),   // all of U over 1 MiB: groups, position by position
        ]
        var generator = SeededGenerator(seed: 58)
        for c in cases {
            let x = Tensor.random([c.batch, c.channels, c.size, c.size], using: &generator)
            let w = Tensor.random([c.filters, c.channels, 3, 3], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let params = Reference.Params(padding: Size2D(c.padding))
            let expected = Reference.conv2d(x, w, b, params)
            let dy = Tensor.random(expected.shape, using: &generator)
            let expectedInput = Reference.convTranspose2d(dy, w, nil, params, outputPadding: 0)
            let expectedWeight = Self.weightGradient(x: x, dy: dy, padding: Size2D(c.padding))
            let engine = try Conv2D(padding: Size2D(c.padding)).makeEngine(input: x.shape, weight: w.shape)
            var (forward, backward) = (engine.forwardWinograd, engine.backwardDataWinograd)
            if forward.product != nil { #expect(forward.isNarrow == c.spans, "\(c)") }
            let products: [ProductKernel?] =
                [nil] + DirectConvolution.InstructionSet.allCases.filter(\.isSupported).map(ProductKernel.init)
            for product in products {
                forward.product = product
                backward.product = product
                let instructionSet = product?.instructionSet
                let (output, inputGradient, weightGradient) = Self.runPasses(forward: forward, backward: backward, x: x, w: w, b: b, dy: dy)
                #expect(relativeError(output, expected.values) <= 2e-4, "forward \(c) \(String(describing: instructionSet))")
                #expect(relativeError(inputGradient, expectedInput.values) <= 2e-4,
                        "backward-data \(c) \(String(describing: instructionSet))")
                #expect(relativeError(weightGradient, expectedWeight) <= 2e-4,
                        "backward-weight \(c) \(String(describing: instructionSet))")
            }
        }
    }

    /// The AVX-512 tile transforms (`WinogradTileTransforms.c`) form the same sums in the same
    /// order as the Swift ones, so all three passes must agree to the bit: tile-rows wider than
    /// one 16-tile step and ending mid-step, odd sizes, every padding, spans and groups.
    @Test(.enabled(if: DirectConvolution.InstructionSet.avx512.isSupported))
    func vectorTileTransformsGiveTheSwiftTransformsBits() throws {
        let cases: [(batch: Int, channels: Int, filters: Int, height: Int, width: Int, padding: Size2D)] = [
            (2, 16, 17, 37, 45, Size2D(height: 1, width: 2)),   // 24 tiles a row: one step and a half
            (1, 16, 16, 70, 70, Size2D(0)),                     // 36 tiles a row (34 used): three steps
            (3, 20, 16, 6, 4, Size2D(2)),
            (2, 17, 19, 5, 7, Size2D(height: 2, width: 0)),
            (1, 16, 16, 1, 1, Size2D(1)),
            (2, 131, 129, 5, 5, Size2D(1)),                     // groups, not spans
        ]
        var generator = SeededGenerator(seed: 61)
        for c in cases {
            let x = Tensor.random([c.batch, c.channels, c.height, c.width], using: &generator)
            let w = Tensor.random([c.filters, c.channels, 3, 3], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let engine = try Conv2D(padding: c.padding).makeEngine(input: x.shape, weight: w.shape)
            let g = engine.geometry
            let dy = Tensor.random([c.batch, c.filters, g.outputHeight, g.outputWidth], using: &generator)
            var results: [[[Float]]] = []
            for prefersSwift in [false, true] {
                var (forward, backward) = (engine.forwardWinograd, engine.backwardDataWinograd)
                forward.product = ProductKernel(instructionSet: .avx512)
                backward.product = forward.product
                forward.prefersSwiftTileTransforms = prefersSwift
                backward.prefersSwiftTileTransforms = prefersSwift
                #expect(forward.usesVectorTileTransforms == !prefersSwift)
                let (output, inputGradient, weightGradient) = Self.runPasses(forward: forward, backward: backward, x: x, w: w, b: b, dy: dy)
                results.append([output, inputGradient, weightGradient])
            }
            for (pass, name) in ["forward", "backward-data", "backward-weight"].enumerated() {
                let differing = zip(results[0][pass], results[1][pass]).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(name) \(c): \(differing) of \(results[0][pass].count) differ")
                #expect(!results[0][pass].contains { $0.isNaN }, "\(name) \(c)")
            }
        }
    }

    /// The three passes of one layer through `forward` (forward, weight gradient) and `backward`
    /// (backward-data), each into a NaN-filled result through one NaN-filled workspace.
    static func runPasses(forward: WinogradF2x3, backward: WinogradF2x3, x: Tensor, w: Tensor, b: Tensor, dy: Tensor)
        -> (output: [Float], inputGradient: [Float], weightGradient: [Float]) {
        var output = [Float](repeating: .nan, count: dy.scalars.count)
        var inputGradient = [Float](repeating: .nan, count: x.scalars.count)
        var weightGradient = [Float](repeating: .nan, count: w.scalars.count)
        var workspace = [Float](repeating: .nan, count: max(forward.workspaceCount, backward.workspaceCount))
        x.withPointer { x in
            w.withPointer { w in
                b.withPointer { b in
                    forward.run(input: x, output: &output, bias: b, workspace: &workspace, kernel: .forward(w))
                }
                dy.withPointer { dy in
                    backward.run(input: dy, output: &inputGradient, bias: nil, workspace: &workspace, kernel: .backwardData(w))
                    forward.weightGradient(input: x, outputGradient: dy, weightGradient: &weightGradient, workspace: &workspace)
                }
            }
        }
        return (output, inputGradient, weightGradient)
    }

    @Test func forwardAndGradientsMatchTheDirectReference() throws {
        var generator = SeededGenerator(seed: 52)
        for c in Self.cases() {
            let x = Tensor.random([c.batch, c.channels, c.height, c.width], using: &generator)
            let w = Tensor.random([c.filters, c.channels, 3, 3], using: &generator)
            let b = Tensor.random([c.filters], using: &generator)
            let params = Reference.Params(padding: c.padding)
            let conv = Conv2D(padding: c.padding)
            let y = try conv.forward(x, weight: w, bias: b)
            let expected = Reference.conv2d(x, w, b, params)
            #expect(y.shape == expected.shape, "\(c)")
            #expect(relativeError(y.scalars, expected.values) <= 2e-4, "forward \(c)")

            // dX of a stride-1 convolution is the transposed convolution of dY with the same weight.
            let dy = Tensor.random(y.shape, using: &generator)
            let dx = try conv.inputGradient(dy, inputShape: x.shape, weight: w)
            let expectedInput = Reference.convTranspose2d(dy, w, nil, params, outputPadding: 0)
            #expect(dx.shape == expectedInput.shape, "\(c)")
            #expect(relativeError(dx.scalars, expectedInput.values) <= 2e-4, "backward-data \(c)")

            // dW[f, c, kh, kw] = Σ dY[n, f, oh, ow] · x[n, c, oh − p + kh, ow − p + kw].
            let dw = try conv.weightGradient(dy, input: x, weightShape: w.shape)
            #expect(relativeError(dw.scalars, Self.weightGradient(x: x, dy: dy, padding: c.padding)) <= 2e-4, "backward-weight \(c)")
        }
    }

    @Test func openBLASThreadCountIsRestoredAfterConcurrentCalls() async throws {
        // Winograd runs its 16 GEMMs on Kernels' threads with OpenBLAS single-threaded for the
        // duration; overlapping calls share that scope, and the last one out restores the count.
        // Other suites run Winograd in parallel, so read the count only between their scopes.
        let before = try await Self.threadCountOutsideScopes()
        var generator = SeededGenerator(seed: 55)
        let x = Tensor.random([2, 16, 12, 12], using: &generator)
        let w = Tensor.random([16, 16, 3, 3], using: &generator)
        let conv = Conv2D(padding: 1)
        let serial = try conv.forward(x, weight: w)
        try await withThrowingTaskGroup(of: Tensor.self) { group in
            for _ in 0..<16 { group.addTask { try conv.forward(x, weight: w) } }
            for try await result in group { #expect(result == serial) }
        }
        #expect(try await Self.threadCountOutsideScopes() == before)
    }

    /// OpenBLAS's thread count at a moment when no single-threaded scope is open (waiting for
    /// other tests' calls to leave theirs, for up to a minute).
    static func threadCountOutsideScopes() async throws -> Int {
        for _ in 0..<60_000 {
            if let count = GEMM.openBLASThreadCountOutsideScopes { return count }
            try await Task.sleep(for: .milliseconds(1))
        }
        Issue.record("a single-threaded OpenBLAS scope stayed open for a minute")
        return -1
    }

    @Test func transposedConvolutionUsesItToo() throws {
        // ConvTranspose2D's forward is the backward-data pass, so a 3×3 stride-1 transposed
        // layer with enough channels runs through Winograd as well.
        var generator = SeededGenerator(seed: 53)
        let x = Tensor.random([2, 18, 6, 5], using: &generator)
        let w = Tensor.random([18, 20, 3, 3], using: &generator)
        let b = Tensor.random([20], using: &generator)
        let layer = ConvTranspose2D(padding: 1)
        #expect(try layer.makeEngine(input: x.shape, weight: w.shape).usesWinograd)
        let z = try layer.forward(x, weight: w, bias: b)
        let expected = Reference.convTranspose2d(x, w, b, .init(padding: 1), outputPadding: 0)
        #expect(relativeError(z.scalars, expected.values) <= 2e-4)
    }

    @Test func transposedGradientsMatchFiniteDifferences() throws {
        // ConvTranspose2D's backward swaps the roles of the passes; check all three gradients.
        var generator = SeededGenerator(seed: 54)
        let x = Tensor.random([1, 16, 4, 3], using: &generator)
        let w = Tensor.random([16, 17, 3, 3], using: &generator)
        let b = Tensor.random([17], using: &generator)
        let layer = ConvTranspose2D(padding: 1)
        #expect(try layer.makeEngine(input: x.shape, weight: w.shape).usesWinograd)
        let r = Tensor.random(try layer.outputShape(input: x.shape, weight: w.shape), using: &generator)
        let g = try layer.backward(r, input: x, weight: w)
        Reference.checkGradients(g, x: x, w: w, b: b, samples: 6, using: &generator, context: "transposed Winograd") { xs, ws, bs in
            let z = Reference.convTranspose2d(xs, x.shape, ws, w.shape, bs, .init(padding: 1), outputPadding: 0)
            return zip(z.values, r.scalars).reduce(0) { $0 + $1.0 * Double($1.1) }
        }
    }

    /// The weight gradient of a 3×3 stride-1 convolution, from its definition, in float64.
    static func weightGradient(x: Tensor, dy: Tensor, padding: Size2D) -> [Double] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (f, oh, ow) = (dy.shape[1], dy.shape[2], dy.shape[3])
        var result = [Double](repeating: 0, count: f * c * 9)
        for ni in 0..<n { for fi in 0..<f { for ci in 0..<c { for kh in 0..<3 { for kw in 0..<3 {
            var sum = 0.0
            for oy in 0..<oh { for ox in 0..<ow {
                let (iy, ix) = (oy - padding.height + kh, ox - padding.width + kw)
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                sum += Double(dy.scalars[((ni * f + fi) * oh + oy) * ow + ox]) * Double(x.scalars[((ni * c + ci) * h + iy) * w + ix])
            } }
            result[((fi * c + ci) * 3 + kh) * 3 + kw] += sum
        } } } } }
        return result
    }
}
