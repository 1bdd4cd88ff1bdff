import Foundation
import Testing
@testable import Kernels

/// Property-based tests over random geometries and random, often invalid, arguments.
///
/// Each iteration draws its own generator from the seed and the iteration number, so a failure
/// message's `KERNELS_FUZZ_SEED=… iteration i` reproduces it exactly. Run longer with
/// `KERNELS_FUZZ_ITERATIONS=100000 swift test --filter Fuzz` (and another seed for new cases).
enum FuzzSettings {
    static let seed: UInt64 = ProcessInfo.processInfo.environment["KERNELS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x4B45_524E_454C_53
    static let iterations: Int = ProcessInfo.processInfo.environment["KERNELS_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 300

    static func generator(iteration: Int) -> SeededGenerator {
        var mixer = SeededGenerator(seed: seed ^ (UInt64(iteration) &* 0xD1B5_4A32_D192_ED03))
        return SeededGenerator(seed: mixer.next())
    }
}

/// One randomly drawn call: a geometry whose every parameter is usually valid and sometimes
/// hostile (zero, negative, Int.min, Int.max, or large enough to overflow what it feeds).
struct FuzzCase: CustomStringConvertible {
    var rank = 4
    var batch = 1, channels = 1, height = 1, width = 1
    var filters = 1, weightChannels = 1
    var kernel = Size2D(1), stride = Size2D(1), padding = Size2D(0), dilation = Size2D(1)
    var biasLength: Int?

    var inputShape: [Int] { rank == 4 ? [batch, channels, height, width] : [channels, height, width] }
    var weightShape: [Int] { [filters, weightChannels, kernel.height, kernel.width] }

    var description: String {
        "input \(inputShape) filters \(filters)×\(weightChannels) kernel \(kernel) stride \(stride) padding \(padding) dilation \(dilation) bias \(biasLength.map(String.init) ?? "none")"
    }

    /// `validRange` most of the time, otherwise one of the hostile values.
    static func pick(_ validRange: ClosedRange<Int>, hostile: [Int], using g: inout SeededGenerator) -> Int {
        Int.random(in: 0..<10, using: &g) == 0 ? hostile.randomElement(using: &g)! : Int.random(in: validRange, using: &g)
    }

    static func pickSize(_ validRange: ClosedRange<Int>, hostile: [Int], using g: inout SeededGenerator) -> Size2D {
        Size2D(height: pick(validRange, hostile: hostile, using: &g), width: pick(validRange, hostile: hostile, using: &g))
    }

    /// `kernelHostile` differs per layer: a weight tensor cannot have a negative or huge kernel.
    static func draw(kernelHostile: [Int], using g: inout SeededGenerator) -> FuzzCase {
        var c = FuzzCase()
        c.rank = Int.random(in: 0..<40, using: &g) == 0 ? 3 : 4
        c.batch = Int.random(in: 0...3, using: &g)
        c.channels = pick(1...4, hostile: [0], using: &g)
        c.height = pick(1...9, hostile: [0], using: &g)
        c.width = pick(1...9, hostile: [0], using: &g)
        c.filters = pick(1...4, hostile: [0], using: &g)
        c.weightChannels = Int.random(in: 0..<25, using: &g) == 0 ? c.channels + 1 : c.channels
        c.kernel = pickSize(1...4, hostile: kernelHostile, using: &g)
        c.stride = pickSize(1...3, hostile: [0, -1, Int.min, Int.max, 1 << 40], using: &g)
        c.padding = pickSize(0...2, hostile: [-1, Int.min, Int.max, 1 << 40, (Int.max - 20) / 2], using: &g)
        c.dilation = pickSize(1...2, hostile: [0, -3, Int.min, Int.max, 1 << 62], using: &g)
        switch Int.random(in: 0..<20, using: &g) {
        case 0..<7: c.biasLength = nil
        case 7: c.biasLength = c.filters + 1
        default: c.biasLength = c.filters
        }
        return c
    }

    /// The arguments a `KernelError` may name for this call; empty when the call is valid.
    ///
    /// Written from the documented rules, in overflow-free arithmetic, not from the library's
    /// code: an injected bad parameter is blamed on itself; a kernel that does not fit is
    /// blamed on `kernelArgument`; an output plane too large for OpenBLAS on the padding when
    /// the padding made it grow.
    func problems(kernelArgument: String, filtersAndBias: Bool, poolPaddingRule: Bool) -> Set<String> {
        var problems = geometryProblems(kernelArgument: kernelArgument, filters: filtersAndBias, poolPaddingRule: poolPaddingRule)
        // The bias is only checked against the filter count, so it is wrong whatever else is.
        if filtersAndBias, let biasLength, biasLength != filters { problems.insert("bias") }
        return problems
    }

    private func geometryProblems(kernelArgument: String, filters checkFilters: Bool, poolPaddingRule: Bool) -> Set<String> {
        var problems = Set<String>()
        if rank != 4 || channels < 1 || height < 1 || width < 1 { problems.insert("input") }
        if checkFilters, filters < 1 || weightChannels != channels { problems.insert("weight") }
        if kernel.height < 1 || kernel.width < 1 { problems.insert(kernelArgument) }
        if stride.height < 1 || stride.width < 1 { problems.insert("stride") }
        if dilation.height < 1 || dilation.width < 1 { problems.insert("dilation") }
        if padding.height < 0 || padding.width < 0 { problems.insert("padding") }
        if poolPaddingRule, kernel.height >= 1, kernel.width >= 1,
           padding.height > kernel.height / 2 || padding.width > kernel.width / 2 {
            problems.insert("padding")
        }
        guard problems.isEmpty else { return problems }

        // Every parameter is in range; now the sizes they derive, each axis on its own (the
        // library stops at the first problem, which is then one of these).
        let axes = [(height, kernel.height, stride.height, padding.height, dilation.height),
                    (width, kernel.width, stride.width, padding.width, dilation.width)]
        var outputs: [Int] = []
        for (input, kernel, stride, padding, dilation) in axes {
            let (halfPadded, paddingOverflow) = input.addingReportingOverflow(padding)
            let (padded, paddedOverflow) = halfPadded.addingReportingOverflow(padding)
            if paddingOverflow || paddedOverflow { problems.insert("padding"); continue }
            if padding.addingReportingOverflow(stride).overflow { problems.insert("stride"); continue }
            let (span, spanOverflow) = dilation.multipliedReportingOverflow(by: kernel - 1)
            if spanOverflow || span == Int.max { problems.insert("dilation"); continue }
            if span + 1 > padded { problems.insert(kernelArgument); continue }
            outputs.append((padded - span - 1) / stride + 1)
        }
        guard problems.isEmpty else { return problems }
        if Double(outputs[0]) * Double(outputs[1]) > Double(Int32.max) {
            problems.insert(outputs[0] > height || outputs[1] > width ? "padding" : "input")
        }
        if poolPaddingRule, let empty = emptyWindowAxis(outputs) { problems.insert(empty) }
        return problems
    }

    /// "dilation" when some pooling window covers only padding.
    private func emptyWindowAxis(_ outputs: [Int]) -> String? {
        let axes = [(outputs[0], height, kernel.height, stride.height, padding.height, dilation.height),
                    (outputs[1], width, kernel.width, stride.width, padding.width, dilation.width)]
        for (outputLength, input, kernel, stride, padding, dilation) in axes {
            for output in 0..<outputLength {
                let taps = (0..<kernel).map { output * stride - padding + $0 * dilation }
                if !taps.contains(where: { (0..<input).contains($0) }) { return "dilation" }
            }
        }
        return nil
    }
}

/// The naive unfold: `columns[n, (c·KH + kh)·KW + kw, oh·OW + ow]` is the pixel tap (kh, kw)
/// of window (oh, ow) sees, or 0 in the padding.
private func directUnfold(_ x: Tensor, _ c: FuzzCase, outputHeight oh: Int, outputWidth ow: Int) -> [Float] {
    let (n, ch, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw) = (c.kernel.height, c.kernel.width)
    var columns = [Float](repeating: 0, count: n * ch * kh * kw * oh * ow)
    for ni in 0..<n { for ci in 0..<ch { for ky in 0..<kh { for kx in 0..<kw { for oy in 0..<oh { for ox in 0..<ow {
        let iy = oy * c.stride.height - c.padding.height + ky * c.dilation.height
        let ix = ox * c.stride.width - c.padding.width + kx * c.dilation.width
        guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
        let row = (ci * kh + ky) * kw + kx
        columns[((ni * ch * kh * kw) + row) * oh * ow + oy * ow + ox] = x.scalars[((ni * ch + ci) * h + iy) * w + ix]
    } } } } } }
    return columns
}

/// The naive max pool: the first strictly greatest tap of each window, with its plane index.
private func directMaxPool(_ x: Tensor, _ c: FuzzCase, outputHeight oh: Int, outputWidth ow: Int) -> (values: [Float], indices: [Int]) {
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    var values: [Float] = [], indices: [Int] = []
    for plane in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
        var best: (value: Float, index: Int)?
        for ky in 0..<c.kernel.height { for kx in 0..<c.kernel.width {
            let iy = oy * c.stride.height - c.padding.height + ky * c.dilation.height
            let ix = ox * c.stride.width - c.padding.width + kx * c.dilation.width
            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
            let value = x.scalars[plane * h * w + iy * w + ix]
            if best == nil || value > best!.value { best = (value, iy * w + ix) }
        } }
        values.append(best!.value)
        indices.append(best!.index)
    } } }
    return (values, indices)
}

/// `|⟨a, b⟩ − ⟨c, d⟩|` relative to `Σ|aᵢbᵢ| + Σ|cᵢdᵢ|`, the scale float32 rounding works at.
func adjointGap(_ a: [Float], _ b: [Float], _ c: [Float], _ d: [Float]) -> Double {
    let magnitude = zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
        + zip(c, d).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
    return abs(dot(a, b) - dot(c, d)) / max(magnitude, 1e-30)
}

@Suite struct FuzzTests {
    static let tolerance = 2e-4
    /// Valid geometries with more outputs per plane than this are only validated, not run.
    static let largestOutputPlane = 4096

    /// Runs `body`, expecting it to throw a `KernelError` naming one of `problems` when there
    /// are any, and to succeed otherwise. Any other error, or a trap, fails the suite.
    private func check(_ problems: Set<String>, _ context: String, _ body: () throws -> Void) {
        do {
            try body()
            #expect(problems.isEmpty, "accepted an invalid call (expected one of \(problems.sorted())): \(context)")
        } catch let error as KernelError {
            #expect(problems.contains(error.argument), "\(error) but expected \(problems.isEmpty ? "success" : "one of \(problems.sorted())"): \(context)")
        } catch {
            Issue.record("non-KernelError \(error): \(context)")
        }
    }

    @Test func convolution() {
        for iteration in 0..<FuzzSettings.iterations {
            var g = FuzzSettings.generator(iteration: iteration)
            let c = FuzzCase.draw(kernelHostile: [0, 12], using: &g)
            let context = "KERNELS_FUZZ_SEED=\(FuzzSettings.seed) iteration \(iteration): conv \(c)"
            let problems = c.problems(kernelArgument: "weight", filtersAndBias: true, poolPaddingRule: false)
            let x = Tensor.random(c.inputShape, using: &g)
            let w = Tensor.random(c.weightShape, using: &g)
            let b = c.biasLength.map { Tensor.random([$0], using: &g) }
            let conv = Conv2D(stride: c.stride, padding: c.padding, dilation: c.dilation)
            check(problems, context) {
                // A huge stride over a huge padding is valid yet asks for gigabytes: check such
                // calls through the shape-only entry points, which validate the same way.
                let shape = try conv.outputShape(input: x.shape, weight: w.shape)
                try ShapeValidation.requireBias(b, channels: c.filters)
                guard shape[2] * shape[3] <= Self.largestOutputPlane else { return }
                let y = try conv.forward(x, weight: w, bias: b)
                let expected = directConvolution(x, weight: w, bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation)
                #expect(y.shape == expected.shape, "\(context)")
                guard y.shape == expected.shape else { return }
                #expect(relativeError(y.scalars, expected.values) <= Self.tolerance, "forward: \(context)")

                // Backward against the reference through linearity: for any x′ and w′,
                // ⟨conv(x′, w), dy⟩ = ⟨x′, dx⟩ and ⟨conv(x, w′), dy⟩ = ⟨w′, dw⟩.
                let dy = Tensor.random(y.shape, using: &g)
                let gradients = try conv.backward(dy, input: x, weight: w)
                let xProbe = Tensor.random(x.shape, using: &g), wProbe = Tensor.random(w.shape, using: &g)
                let throughInput = directConvolution(xProbe, weight: w, stride: c.stride, padding: c.padding, dilation: c.dilation).values
                let throughWeight = directConvolution(x, weight: wProbe, stride: c.stride, padding: c.padding, dilation: c.dilation).values
                let dyScalars = dy.scalars.map(Double.init)
                let inputSide = zip(throughInput, dyScalars).reduce(0) { $0 + $1.0 * $1.1 }
                let weightSide = zip(throughWeight, dyScalars).reduce(0) { $0 + $1.0 * $1.1 }
                let inputScale = zip(throughInput, dyScalars).reduce(0) { $0 + abs($1.0 * $1.1) } + 1e-30
                let weightScale = zip(throughWeight, dyScalars).reduce(0) { $0 + abs($1.0 * $1.1) } + 1e-30
                #expect(abs(inputSide - dot(xProbe.scalars, gradients.input.scalars)) / inputScale <= Self.tolerance, "input gradient: \(context)")
                #expect(abs(weightSide - dot(wProbe.scalars, gradients.weight.scalars)) / weightScale <= Self.tolerance, "weight gradient: \(context)")
                let biasExpected = (0..<c.filters).map { filter in
                    (0..<c.batch).reduce(0.0) { sum, image in
                        let plane = y.shape[2] * y.shape[3], start = (image * c.filters + filter) * plane
                        return sum + dy.scalars[start..<start + plane].reduce(0.0) { $0 + Double($1) }
                    }
                }
                #expect(relativeError(gradients.bias.scalars, biasExpected) <= Self.tolerance, "bias gradient: \(context)")

                // ⟨conv(x), y⟩ = ⟨x, convT(y)⟩ with the same weight; the output padding makes
                // the transposed output exactly the input's size.
                let outputPadding = Size2D(
                    height: (c.height + 2 * c.padding.height - c.dilation.height * (c.kernel.height - 1) - 1) % c.stride.height,
                    width: (c.width + 2 * c.padding.width - c.dilation.width * (c.kernel.width - 1) - 1) % c.stride.width)
                let transposed = ConvTranspose2D(stride: c.stride, padding: c.padding, outputPadding: outputPadding, dilation: c.dilation)
                let unbiased = try conv.forward(x, weight: w)
                let back = try transposed.forward(dy, weight: w)
                #expect(back.shape == x.shape, "transposed shape \(back.shape): \(context)")
                guard back.shape == x.shape else { return }
                #expect(adjointGap(unbiased.scalars, dy.scalars, x.scalars, back.scalars) <= Self.tolerance, "⟨conv(x), y⟩ ≠ ⟨x, convT(y)⟩: \(context)")
                #expect(relativeError(gradients.input.scalars, back.scalars) <= Self.tolerance, "input gradient ≠ convT: \(context)")
            }
        }
    }

    @Test func im2col() {
        for iteration in 0..<FuzzSettings.iterations {
            var g = FuzzSettings.generator(iteration: iteration)
            let c = FuzzCase.draw(kernelHostile: [0, -1, 12, Int.min, Int.max], using: &g)
            let context = "KERNELS_FUZZ_SEED=\(FuzzSettings.seed) iteration \(iteration): im2col \(c)"
            let problems = c.problems(kernelArgument: "kernel", filtersAndBias: false, poolPaddingRule: false)
            let x = Tensor.random(c.inputShape, using: &g)
            let unfold = Im2Col(kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation)
            check(problems, context) {
                let geometry = try unfold.geometry(inputShape: x.shape, argument: "input")
                guard geometry.outputPlaneSize <= Self.largestOutputPlane else { return }
                let columns = try unfold.columns(x)
                let expected = directUnfold(x, c, outputHeight: geometry.outputHeight, outputWidth: geometry.outputWidth)
                #expect(columns.shape == [c.batch, c.channels * c.kernel.height * c.kernel.width, geometry.outputPlaneSize], "\(context)")
                #expect(columns.scalars == expected, "columns differ from the direct unfold: \(context)")
                let probe = Tensor.random(columns.shape, using: &g)
                let folded = try unfold.image(probe, shape: x.shape)
                #expect(adjointGap(columns.scalars, probe.scalars, x.scalars, folded.scalars) <= 1e-5,
                        "⟨im2col(x), c⟩ ≠ ⟨x, col2im(c)⟩: \(context)")
            }
        }
    }

    @Test func maxPooling() {
        for iteration in 0..<FuzzSettings.iterations {
            var g = FuzzSettings.generator(iteration: iteration)
            let c = FuzzCase.draw(kernelHostile: [0, -1, 12, Int.min, Int.max], using: &g)
            let context = "KERNELS_FUZZ_SEED=\(FuzzSettings.seed) iteration \(iteration): pool \(c)"
            let problems = c.problems(kernelArgument: "kernel", filtersAndBias: false, poolPaddingRule: true)
            let x = Tensor.random(c.inputShape, using: &g)
            let pool = MaxPool2D(kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation)
            check(problems, context) {
                let geometry = try pool.geometry(inputShape: x.shape, argument: "input")
                guard geometry.outputPlaneSize <= Self.largestOutputPlane else { return }
                let p = try pool.forward(x)
                let (oh, ow) = (p.output.shape[2], p.output.shape[3])
                let expected = directMaxPool(x, c, outputHeight: oh, outputWidth: ow)
                #expect(p.output.scalars == expected.values && p.indices == expected.indices, "\(context)")
                let dy = Tensor.random(p.output.shape, using: &g)
                let dx = try pool.backward(dy, indices: p.indices, inputShape: x.shape)
                var scattered = [Double](repeating: 0, count: x.count)
                for (position, index) in expected.indices.enumerated() {
                    scattered[(position / (oh * ow)) * c.height * c.width + index] += Double(dy.scalars[position])
                }
                #expect(relativeError(dx.scalars, scattered) <= 1e-6, "pool backward: \(context)")
            }
        }
    }
}
