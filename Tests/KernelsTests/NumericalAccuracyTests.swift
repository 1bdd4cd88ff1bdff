import Testing
@testable import Kernels

/// How far float32 results are from the exact (float64) answer, and how non-finite values
/// travel through the layers.
///
/// Two bounds are asserted for long reductions (K products summed per output):
/// - per element, the classical worst case for any summation order,
///   `|ŷ − y| ≤ γ_K · Σ|xᵢ·wᵢ|` with `γ_K = K·u / (1 − K·u)`, `u = 2⁻²⁴`;
/// - over the tensor, the relative error (largest error over the largest |y|) documented in
///   Docs/Reliability.md: below 1e-5 for these sizes (measured 1e-7 to 8e-7 with OpenBLAS and
///   the blocked Swift GEMM, each element within 0.03 % of its γ_K bound).
@Suite struct NumericalAccuracyTests {
    static let unitRoundoff = 0x1p-24
    static let documentedRelativeError = 1e-5

    static func gamma(_ terms: Int) -> Double {
        let ku = Double(terms) * unitRoundoff
        return ku / (1 - ku)
    }

    /// Checks `actual` against `exact` element by element with the γ_K bound, where
    /// `absoluteSums[i]` is Σ|terms| of element i, and overall with the documented relative error.
    private func expectAccurate(_ actual: [Float], exact: [Double], absoluteSums: [Double], terms: Int,
                                _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.count == exact.count, sourceLocation: sourceLocation)
        // The final rounding to float adds one more u·|y|.
        let bound = Self.gamma(terms + 1)
        let violations = zip(zip(actual, exact), absoluteSums).filter { pair, sum in
            !(abs(Double(pair.0) - pair.1) <= bound * sum)
        }
        #expect(violations.isEmpty, "\(what): \(violations.count) elements beyond γ_\(terms)·Σ|terms|, first \(violations.first.map { "\($0)" } ?? "")",
                sourceLocation: sourceLocation)
        let error = relativeError(actual, exact)
        #expect(error <= Self.documentedRelativeError, "\(what): relative error \(error)", sourceLocation: sourceLocation)
    }

    private func absolute(_ tensor: Tensor) -> Tensor {
        try! Tensor(shape: tensor.shape, scalars: tensor.scalars.map(abs))
    }

    @Test(arguments: [GEMMBackend.openBLAS, .swiftBlocked])
    func forwardOverC512Kernel3x3(backend: GEMMBackend) throws {
        var generator = SeededGenerator(seed: 512)
        let x = Tensor.random([2, 512, 8, 8], using: &generator)
        let w = Tensor.random([16, 512, 3, 3], using: &generator)
        let conv = Conv2D(padding: 1, backend: backend)
        let y = try conv.forward(x, weight: w)
        let exact = directConvolution(x, weight: w, padding: 1)
        let magnitudes = directConvolution(absolute(x), weight: absolute(w), padding: 1)
        #expect(y.shape == exact.shape)
        expectAccurate(y.scalars, exact: exact.values, absoluteSums: magnitudes.values, terms: 512 * 9, "forward")
    }

    @Test func inputGradientOverF512Kernel3x3() throws {
        // dx[c, ih, iw] sums F·KH·KW = 4608 products dy[f, oh, ow]·w[f, c, kh, kw].
        var generator = SeededGenerator(seed: 4608)
        let (filters, channels, size) = (512, 8, 8)
        let dy = Tensor.random([1, filters, size, size], using: &generator)
        let w = Tensor.random([filters, channels, 3, 3], using: &generator)
        let dx = try Conv2D(padding: 1).inputGradient(dy, inputShape: [1, channels, size, size], weight: w)
        var exact = [Double](repeating: 0, count: channels * size * size), magnitudes = exact
        for f in 0..<filters { for oy in 0..<size { for ox in 0..<size {
            let gradient = Double(dy.scalars[(f * size + oy) * size + ox])
            for c in 0..<channels { for ky in 0..<3 { for kx in 0..<3 {
                let (iy, ix) = (oy - 1 + ky, ox - 1 + kx)
                guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                let weight = Double(w.scalars[((f * channels + c) * 3 + ky) * 3 + kx])
                exact[(c * size + iy) * size + ix] += gradient * weight
                magnitudes[(c * size + iy) * size + ix] += abs(gradient * weight)
            } } }
        } } }
        expectAccurate(dx.scalars, exact: exact, absoluteSums: magnitudes, terms: filters * 9, "input gradient")
    }

    @Test func weightAndBiasGradientsOverN8Plane24x24() throws {
        // dw[f, c, kh, kw] sums N·OH·OW = 4608 products; the bias gradient sums as many terms.
        var generator = SeededGenerator(seed: 576)
        let (batch, channels, filters, size) = (8, 4, 8, 24)
        let x = Tensor.random([batch, channels, size, size], using: &generator)
        let dy = Tensor.random([batch, filters, size, size], using: &generator)
        let w = Tensor.random([filters, channels, 3, 3], using: &generator)
        let g = try Conv2D(padding: 1).backward(dy, input: x, weight: w)
        var exact = [Double](repeating: 0, count: filters * channels * 9), magnitudes = exact
        var biasExact = [Double](repeating: 0, count: filters), biasMagnitudes = biasExact
        for n in 0..<batch { for f in 0..<filters { for oy in 0..<size { for ox in 0..<size {
            let gradient = Double(dy.scalars[((n * filters + f) * size + oy) * size + ox])
            biasExact[f] += gradient
            biasMagnitudes[f] += abs(gradient)
            for c in 0..<channels { for ky in 0..<3 { for kx in 0..<3 {
                let (iy, ix) = (oy - 1 + ky, ox - 1 + kx)
                guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                let product = gradient * Double(x.scalars[((n * channels + c) * size + iy) * size + ix])
                exact[((f * channels + c) * 3 + ky) * 3 + kx] += product
                magnitudes[((f * channels + c) * 3 + ky) * 3 + kx] += abs(product)
            } } }
        } } } }
        let terms = batch * size * size
        expectAccurate(g.weight.scalars, exact: exact, absoluteSums: magnitudes, terms: terms, "weight gradient")
        expectAccurate(g.bias.scalars, exact: biasExact, absoluteSums: biasMagnitudes, terms: terms, "bias gradient")
    }

    // MARK: NaN and ±infinity, as in PyTorch

    /// Which outputs of a convolution read input pixel `pixel` of image 0 (any channel, any
    /// weight value, even 0: IEEE makes NaN·0 and ∞·0 NaN).
    private func touched(by pixel: (c: Int, y: Int, x: Int), input: [Int], weight: [Int], _ conv: Conv2D) -> [Bool] {
        var indicator = [Float](repeating: 0, count: input.reduce(1, *))
        indicator[(pixel.c * input[2] + pixel.y) * input[3] + pixel.x] = 1
        let reach = directConvolution(try! Tensor(shape: input, scalars: indicator), weight: try! Tensor(shape: weight, repeating: 1),
                                      stride: conv.stride, padding: conv.padding, dilation: conv.dilation)
        return reach.values.map { $0 > 0 }
    }

    static let geometries: [Conv2D] = [Conv2D(padding: 1), Conv2D(stride: 2, padding: 1), Conv2D(dilation: 2), Conv2D()]

    @Test(arguments: geometries, [Float.nan, .infinity, -.infinity])
    func nonFiniteInputReachesExactlyTheOutputsItTouches(conv: Conv2D, value: Float) throws {
        var generator = SeededGenerator(seed: 99)
        let kernel = conv == Conv2D() ? 1 : 3
        // Positive weights and inputs keep ±∞ from meeting ∓∞; one zero weight shows 0·NaN = NaN.
        var weights = (0..<3 * 2 * kernel * kernel).map { _ in Float.random(in: 0.5...1, using: &generator) }
        weights[0] = value.isNaN ? 0 : weights[0]
        let w = try Tensor(shape: [3, 2, kernel, kernel], scalars: weights)
        var pixels = (0..<2 * 2 * 7 * 7).map { _ in Float.random(in: 0.5...1, using: &generator) }
        let pixel = (c: 1, y: 3, x: 4)
        pixels[(pixel.c * 7 + pixel.y) * 7 + pixel.x] = value
        let x = try Tensor(shape: [2, 2, 7, 7], scalars: pixels)
        let y = try conv.forward(x, weight: w, bias: try Tensor(shape: [3], repeating: 0.25))
        let reach = touched(by: pixel, input: x.shape, weight: w.shape, conv)
        #expect(reach.contains(true))
        for (index, (output, isTouched)) in zip(y.scalars, reach).enumerated() {
            if !isTouched {
                #expect(output.isFinite, "output \(index) is \(output) but does not see the \(value)")
            } else if value.isNaN {
                #expect(output.isNaN, "output \(index) is \(output) but sees the NaN")
            } else {
                #expect(output == value, "output \(index) is \(output) but sees the \(value) through positive weights")
            }
        }
    }

    @Test func nanOutputGradientReachesTheInputGradientItTouches() throws {
        // conv.backward's input gradient scatters dy through the weight: a NaN in dy at (oh, ow)
        // reaches exactly the pixels that output's window covers, in every channel.
        var generator = SeededGenerator(seed: 5)
        let conv = Conv2D(stride: 2, padding: 1)
        let x = Tensor.random([1, 2, 7, 7], using: &generator)
        let w = Tensor.random([3, 2, 3, 3], using: &generator)
        var gradient = Tensor.random([1, 3, 4, 4], using: &generator).scalars
        let (filter, oy, ox) = (2, 1, 2)
        gradient[(filter * 4 + oy) * 4 + ox] = .nan
        let g = try conv.backward(try Tensor(shape: [1, 3, 4, 4], scalars: gradient), input: x, weight: w)
        for c in 0..<2 { for iy in 0..<7 { for ix in 0..<7 {
            let covered = (0..<3).contains(iy - (oy * 2 - 1)) && (0..<3).contains(ix - (ox * 2 - 1))
            let value = g.input.scalars[(c * 7 + iy) * 7 + ix]
            #expect(value.isNaN == covered, "dx[\(c), \(iy), \(ix)] = \(value)")
        } } }
        #expect(g.bias.scalars[filter].isNaN && g.bias.scalars.enumerated().allSatisfy { $0.offset == filter || $0.element.isFinite })
        // Every weight of that filter meets the NaN (its window lies inside the image, so no
        // tap reads padding), no weight of another filter does.
        let filterSize = 2 * 9
        for (index, value) in g.weight.scalars.enumerated() {
            #expect(value.isNaN == (index / filterSize == filter), "dw[\(index)] = \(value)")
        }
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteInputThroughTransposedConvolution(value: Float) throws {
        // Each input pixel scatters into a kernel-sized patch of the output: exactly those
        // outputs become non-finite.
        var generator = SeededGenerator(seed: 13)
        let up = ConvTranspose2D(stride: 2, padding: 1, outputPadding: 1)
        var pixels = (0..<2 * 4 * 4).map { _ in Float.random(in: 0.5...1, using: &generator) }
        let (iy, ix) = (2, 1)
        pixels[(1 * 4 + iy) * 4 + ix] = value
        let x = try Tensor(shape: [1, 2, 4, 4], scalars: pixels)
        let w = try Tensor(shape: [2, 3, 3, 3], scalars: (0..<54).map { _ in Float.random(in: 0.5...1, using: &generator) })
        let z = try up.forward(x, weight: w)
        #expect(z.shape == [1, 3, 8, 8])
        for c in 0..<3 { for oy in 0..<8 { for ox in 0..<8 {
            let reached = (0..<3).contains(oy - (iy * 2 - 1)) && (0..<3).contains(ox - (ix * 2 - 1))
            let output = z.scalars[(c * 8 + oy) * 8 + ox]
            if !reached {
                #expect(output.isFinite, "z[\(c), \(oy), \(ox)] = \(output)")
            } else {
                #expect(value.isNaN ? output.isNaN : output == value, "z[\(c), \(oy), \(ox)] = \(output)")
            }
        } } }
    }

    @Test func poolingPropagatesNaNAndLetsPlusInfinityWin() throws {
        // One 2×6 plane pooled 2×2, stride 2: three windows.
        //   window 0: 1, NaN, 5, 2       → NaN at index 1
        //   window 1: +∞, 3, NaN, 4      → NaN beats +∞: index 8
        //   window 2: 7, +∞, −∞, +∞      → the first +∞: index 5
        let plane: [Float] = [1, .nan, .infinity, 3, 7, .infinity,
                              5, 2, .nan, 4, -.infinity, .infinity]
        let pool = MaxPool2D(kernel: 2)
        let p = try pool.forward(try Tensor(shape: [1, 1, 2, 6], scalars: plane))
        #expect(p.output.scalars[0].isNaN && p.output.scalars[1].isNaN && p.output.scalars[2] == .infinity)
        #expect(p.indices == [1, 8, 5])

        // All −∞: the maximum is −∞ at the window's first pixel; a −∞ next to a NaN loses.
        let negative = try pool.forward(try Tensor(shape: [1, 1, 2, 4], scalars: [-.infinity, -.infinity, -.infinity, .nan,
                                                                                  -.infinity, -.infinity, -.infinity, -.infinity]))
        #expect(negative.output.scalars[0] == -.infinity && negative.output.scalars[1].isNaN)
        #expect(negative.indices == [0, 3])

        // With padding the −∞ fill never wins over a real −∞ pixel's index.
        let padded = try MaxPool2D(kernel: 3, stride: 1, padding: 1).forward(try Tensor(shape: [1, 1, 1, 1], scalars: [-.infinity]))
        #expect(padded.output.scalars == [-.infinity] && padded.indices == [0])

        // Backward sends a NaN gradient only to the pixel its index names.
        let dx = try pool.backward(try Tensor(shape: [1, 1, 1, 3], scalars: [.nan, 1, 2]), indices: p.indices, inputShape: [1, 1, 2, 6])
        #expect(dx.scalars.enumerated().allSatisfy { $0.offset == 1 ? $0.element.isNaN : $0.element.isFinite })
        #expect(dx.scalars[8] == 1 && dx.scalars[5] == 2)
    }

    @Test func poolingNaNOnlyAffectsItsOwnWindows() throws {
        var generator = SeededGenerator(seed: 3)
        var pixels = Tensor.random([2, 3, 9, 9], using: &generator).scalars
        let (plane, iy, ix) = (4, 4, 6)
        pixels[plane * 81 + iy * 9 + ix] = .nan
        let pool = MaxPool2D(kernel: 3, stride: 2, padding: 1)
        let p = try pool.forward(try Tensor(shape: [2, 3, 9, 9], scalars: pixels))
        let outputs = 5 * 5
        for (position, value) in p.output.scalars.enumerated() {
            let (outputPlane, oy, ox) = (position / outputs, position % outputs / 5, position % 5)
            let covers = outputPlane == plane && (0..<3).contains(iy - (oy * 2 - 1)) && (0..<3).contains(ix - (ox * 2 - 1))
            #expect(value.isNaN == covers, "output \(position) = \(value)")
            if covers { #expect(p.indices[position] == iy * 9 + ix) }
        }
    }
}
