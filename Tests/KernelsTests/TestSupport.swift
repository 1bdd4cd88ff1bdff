import Testing
@testable import Kernels

/// A small, fast, seedable generator (SplitMix64) so random tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Tensor {
    /// A tensor of uniform values in -1...1.
    static func random(_ shape: [Int], using generator: inout SeededGenerator) -> Tensor {
        let count = shape.reduce(1, *)
        return try! Tensor(shape: shape, scalars: (0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
    }

    /// `0, 1, 2, ...` in the given shape.
    static func iota(_ shape: [Int]) -> Tensor {
        try! Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map(Float.init))
    }
}

/// ⟨a, b⟩ in Double.
func dot(_ a: [Float], _ b: [Float]) -> Double {
    zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// The largest |actual − expected| relative to the largest |expected| (or 1 when that is tiny).
func relativeError(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count, "count mismatch \(actual.count) vs \(expected.count)")
    let scale = max(expected.map(abs).max() ?? 0, 1e-6)
    var worst = 0.0
    for (a, e) in zip(actual, expected) { worst = max(worst, abs(Double(a) - e)) }
    return worst / scale
}

func relativeError(_ actual: [Float], _ expected: [Float]) -> Double {
    relativeError(actual, expected.map(Double.init))
}

/// Expects `body` to throw a `KernelError` naming `argument`.
func expectKernelError(_ argument: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a KernelError for '\(argument)', but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as KernelError {
        #expect(error.argument == argument, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a KernelError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// The textbook convolution in float64, sharing nothing with the code under test: one loop per
/// index of `y[n,f,oh,ow] = bias[f] + Σ_{c,kh,kw} x[n,c,oh·s−p+kh·d, ow·s−p+kw·d] · w[f,c,kh,kw]`,
/// skipping taps that fall in the padding. Inputs must already be valid.
func directConvolution(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                       stride: Size2D = 1, padding: Size2D = 0, dilation: Size2D = 1) -> (shape: [Int], values: [Double]) {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (f, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let oh = (h + 2 * padding.height - dilation.height * (kh - 1) - 1) / stride.height + 1
    let ow = (w + 2 * padding.width - dilation.width * (kw - 1) - 1) / stride.width + 1
    var output = [Double](repeating: 0, count: n * f * oh * ow)
    for ni in 0..<n {
        for fi in 0..<f {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var sum = bias.map { Double($0.scalars[fi]) } ?? 0
                    for ci in 0..<c {
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let iy = oy * stride.height - padding.height + ky * dilation.height
                                let ix = ox * stride.width - padding.width + kx * dilation.width
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                sum += Double(input.scalars[((ni * c + ci) * h + iy) * w + ix])
                                    * Double(weight.scalars[((fi * c + ci) * kh + ky) * kw + kx])
                            }
                        }
                    }
                    output[((ni * f + fi) * oh + oy) * ow + ox] = sum
                }
            }
        }
    }
    return ([n, f, oh, ow], output)
}

/// The raw bits of each scalar, so results compare bit for bit (NaN payloads and −0 included).
func bitPatterns(_ tensor: Tensor) -> [UInt32] {
    tensor.scalars.map(\.bitPattern)
}

/// Compile-time proof that a type can cross task boundaries.
func requireSendable<T: Sendable>(_: T.Type) {}
