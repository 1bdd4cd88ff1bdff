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

/// The textbook float64 convolution (``Reference/conv2d(_:_:_:_:)``) with PyTorch-style labels.
func directConvolution(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                       stride: Size2D = 1, padding: Size2D = 0, dilation: Size2D = 1) -> (shape: [Int], values: [Double]) {
    Reference.conv2d(input, weight, bias, .init(stride: stride, padding: padding, dilation: dilation))
}

/// The raw bits of each scalar, so results compare bit for bit (NaN payloads and −0 included).
func bitPatterns(_ tensor: Tensor) -> [UInt32] {
    tensor.scalars.map(\.bitPattern)
}

/// Compile-time proof that a type can cross task boundaries.
func requireSendable<T: Sendable>(_: T.Type) {}

/// `convolution`'s forward pass of `x` by `w` (plus `b` when given), into a NaN-filled output of
/// `outputCount` floats with a NaN-filled workspace: a pass that leaves an output unwritten, or
/// reads workspace it never wrote, shows as NaN.
func forwardOutput(_ convolution: some ForwardConvolution, x: Tensor, w: Tensor, b: Tensor?, outputCount: Int) -> [Float] {
    var output = [Float](repeating: .nan, count: outputCount)
    var workspace = [Float](repeating: .nan, count: convolution.workspaceCount)
    x.withPointer { x in
        w.withPointer { w in
            if let b {
                b.withPointer { b in convolution.forward(input: x, weight: w, bias: b, output: &output, workspace: &workspace) }
            } else {
                convolution.forward(input: x, weight: w, bias: nil, output: &output, workspace: &workspace)
            }
        }
    }
    return output
}
