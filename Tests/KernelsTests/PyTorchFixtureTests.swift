import Foundation
import Testing
@testable import Kernels

/// Kernels against numbers PyTorch computed (`Scripts/make_fixtures.py`, float64 references from
/// float32 inputs): a second, independent implementation of every convention DESIGN.md promises.
@Suite struct PyTorchFixtureTests {
    /// Largest |difference| over largest |reference|: float32 arithmetic on these small tensors
    /// stays around 1e-6, so 2e-4 only trips on a real error.
    static let tolerance = 2e-4

    @Test(arguments: try FixtureLoader.load(Conv2DCase.self, from: "conv2d"), GEMMBackend.allCases)
    func conv2d(_ fixture: Conv2DCase, backend: GEMMBackend) throws {
        let conv = Conv2D(stride: fixture.stride, padding: fixture.padding, dilation: fixture.dilation, backend: backend)
        let x = try fixture.input.tensor(), w = try fixture.weight.tensor(), dy = try fixture.outputGradient.tensor()

        #expect(try conv.outputShape(input: x.shape, weight: w.shape) == fixture.output.shape)
        expectMatch(try conv.forward(x, weight: w, bias: try fixture.bias?.tensor()), fixture.output, "output")

        let gradients = try conv.backward(dy, input: x, weight: w)
        expectMatch(gradients.input, fixture.inputGradient, "input gradient")
        expectMatch(gradients.weight, fixture.weightGradient, "weight gradient")
        expectMatch(gradients.bias, fixture.biasGradient, "bias gradient")
        // The single-gradient entry points are separate public calls, so they get checked too.
        expectMatch(try conv.inputGradient(dy, inputShape: x.shape, weight: w), fixture.inputGradient, "inputGradient(_:)")
        expectMatch(try conv.weightGradient(dy, input: x, weightShape: w.shape), fixture.weightGradient, "weightGradient(_:)")
    }

    @Test(arguments: try FixtureLoader.load(ConvTranspose2DCase.self, from: "conv_transpose2d"), GEMMBackend.allCases)
    func convTranspose2d(_ fixture: ConvTranspose2DCase, backend: GEMMBackend) throws {
        let layer = ConvTranspose2D(stride: fixture.stride, padding: fixture.padding, outputPadding: fixture.outputPadding,
                                    dilation: fixture.dilation, backend: backend)
        let x = try fixture.input.tensor(), w = try fixture.weight.tensor()

        #expect(try layer.outputShape(input: x.shape, weight: w.shape) == fixture.output.shape)
        expectMatch(try layer.forward(x, weight: w, bias: try fixture.bias?.tensor()), fixture.output, "output")

        let gradients = try layer.backward(try fixture.outputGradient.tensor(), input: x, weight: w)
        expectMatch(gradients.input, fixture.inputGradient, "input gradient")
        expectMatch(gradients.weight, fixture.weightGradient, "weight gradient")
        expectMatch(gradients.bias, fixture.biasGradient, "bias gradient")
    }

    @Test(arguments: try FixtureLoader.load(MaxPool2DCase.self, from: "max_pool2d"))
    func maxPool2d(_ fixture: MaxPool2DCase) throws {
        let pool = MaxPool2D(kernel: fixture.kernel, stride: fixture.stride, padding: fixture.padding, dilation: fixture.dilation)
        let x = try fixture.input.tensor()

        let result = try pool.forward(x)
        expectMatch(result.output, fixture.output, "output")
        // Indices are exact: a tie or NaN resolved differently is a semantic difference, not rounding.
        #expect(result.indices == fixture.indices)

        let dx = try pool.backward(try fixture.outputGradient.tensor(), indices: result.indices, inputShape: x.shape)
        expectMatch(dx, fixture.inputGradient, "input gradient")
    }

    @Test(arguments: try FixtureLoader.load(UnfoldFoldCase.self, from: "unfold_fold"))
    func unfoldAndFold(_ fixture: UnfoldFoldCase) throws {
        let unfold = Im2Col(kernel: fixture.kernel, stride: fixture.stride, padding: fixture.padding, dilation: fixture.dilation)
        let x = try fixture.input.tensor()
        expectMatch(try unfold.columns(x), fixture.columns, "F.unfold")
        expectMatch(try unfold.image(try fixture.foldColumns.tensor(), shape: x.shape), fixture.foldImage, "F.fold")
    }

    /// Where Kernels deliberately accepts or rejects differently from PyTorch, and why. The test
    /// checks that Kernels still behaves this way, so the list cannot go stale silently.
    static let intendedDivergences: [String: String] = [
        "pool window entirely in padding":
            "PyTorch returns -inf and an index outside the input plane, which backward cannot use; Kernels rejects it",
    ]

    /// Kernels must reject every argument PyTorch rejects (with a `KernelError`, never a trap) and
    /// accept, with the same output shape, everything PyTorch accepts.
    @Test(arguments: try FixtureLoader.load(RuleCase.self, from: "rules"))
    func argumentRules(_ fixture: RuleCase) throws {
        var outputShape: [Int]?
        var rejection: KernelError?
        do { outputShape = try fixture.run() } catch let error as KernelError { rejection = error }
        let kernelsAccepts = rejection == nil
        if let reason = Self.intendedDivergences[fixture.name] {
            #expect(kernelsAccepts != fixture.accepted, "no longer diverges from PyTorch (\(reason))")
            return
        }
        #expect(kernelsAccepts == fixture.accepted,
                "PyTorch: \(fixture.message ?? "accepted"); Kernels: \(rejection.map { "\($0)" } ?? "accepted")")
        if fixture.accepted, kernelsAccepts { #expect(outputShape == fixture.outputShape) }
    }

    @Test func fixturesCameFromTheDocumentedTorch() throws {
        for name in ["conv2d", "conv_transpose2d", "max_pool2d", "unfold_fold", "rules"] {
            let header = try FixtureLoader.decoder.decode(FixtureHeader.self, from: Data(contentsOf: FixtureLoader.url(name)))
            #expect(header.torch.hasPrefix("2.15.0"), "\(name).json")
        }
    }
}

// MARK: - Comparison

/// Same shape; NaN exactly where the reference has NaN; the same infinities; finite values within
/// ``PyTorchFixtureTests/tolerance`` of the reference (relative to its largest magnitude).
private func expectMatch(_ actual: Tensor, _ expected: FixtureTensor, _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, "\(what) shape", sourceLocation: sourceLocation)
    guard actual.count == expected.values.count else { return }
    var finiteActual: [Float] = [], finiteExpected: [Double] = []
    for (index, (a, e)) in zip(actual.scalars, expected.values).enumerated() {
        if e.isFinite {
            // relativeError ignores NaN (max with NaN keeps the old value), so check it here.
            #expect(a.isFinite, "\(what)[\(index)] is \(a) where PyTorch has \(e)", sourceLocation: sourceLocation)
            finiteActual.append(a)
            finiteExpected.append(e)
        } else if e.isNaN {
            #expect(a.isNaN, "\(what)[\(index)] is \(a) where PyTorch has NaN", sourceLocation: sourceLocation)
        } else {
            #expect(Double(a) == e, "\(what)[\(index)] is \(a) where PyTorch has \(e)", sourceLocation: sourceLocation)
        }
    }
    let error = relativeError(finiteActual, finiteExpected)
    #expect(error <= PyTorchFixtureTests.tolerance, "\(what): relative error \(error)", sourceLocation: sourceLocation)
}

// MARK: - Fixture files

enum FixtureLoader {
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        // JSON has no NaN or infinity; make_fixtures.py writes them as these strings.
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }()

    static func url(_ name: String) throws -> URL {
        let folder = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil), "Fixtures folder missing from the test bundle")
        return folder.appendingPathComponent("\(name).json")
    }

    static func load<Case: Decodable>(_ type: Case.Type, from name: String) throws -> [Case] {
        try decoder.decode(FixtureFile<Case>.self, from: Data(contentsOf: url(name))).cases
    }
}

struct FixtureFile<Case: Decodable>: Decodable {
    let cases: [Case]
}

/// The PyTorch version that wrote a fixture file.
struct FixtureHeader: Decodable {
    let torch: String
}

/// `{"shape": [...], "values": [...]}`, row-major.
struct FixtureTensor: Decodable, Sendable {
    let shape: [Int]
    let values: [Double]

    /// The float32 tensor the fixture's values spell exactly (inputs are written float32-exact).
    func tensor() throws -> Tensor {
        let scalars = try values.map { value in
            if value.isNaN { return Float.nan }
            return try #require(Float(exactly: value), "\(value) is not a float32 value")
        }
        return try Tensor(shape: shape, scalars: scalars)
    }
}

/// `[height, width]` in the fixture.
private func size(_ pair: [Int]) -> Size2D { Size2D(height: pair[0], width: pair[1]) }

/// Cases show up in test output under their fixture name.
protocol NamedCase: Decodable, Sendable, CustomTestStringConvertible {
    var name: String { get }
}

extension NamedCase {
    var testDescription: String { name }
}

struct Conv2DCase: NamedCase {
    let name: String
    private let stridePair, paddingPair, dilationPair: [Int]
    let input, weight, output, outputGradient, inputGradient, weightGradient, biasGradient: FixtureTensor
    let bias: FixtureTensor?
    var stride: Size2D { size(stridePair) }
    var padding: Size2D { size(paddingPair) }
    var dilation: Size2D { size(dilationPair) }

    private enum CodingKeys: String, CodingKey {
        case name, input, weight, bias, output, outputGradient, inputGradient, weightGradient, biasGradient
        case stridePair = "stride", paddingPair = "padding", dilationPair = "dilation"
    }
}

struct ConvTranspose2DCase: NamedCase {
    let name: String
    private let stridePair, paddingPair, outputPaddingPair, dilationPair: [Int]
    let input, weight, output, outputGradient, inputGradient, weightGradient, biasGradient: FixtureTensor
    let bias: FixtureTensor?
    var stride: Size2D { size(stridePair) }
    var padding: Size2D { size(paddingPair) }
    var outputPadding: Size2D { size(outputPaddingPair) }
    var dilation: Size2D { size(dilationPair) }

    private enum CodingKeys: String, CodingKey {
        case name, input, weight, bias, output, outputGradient, inputGradient, weightGradient, biasGradient
        case stridePair = "stride", paddingPair = "padding", outputPaddingPair = "outputPadding", dilationPair = "dilation"
    }
}

struct MaxPool2DCase: NamedCase {
    let name: String
    private let kernelPair, stridePair, paddingPair, dilationPair: [Int]
    let input, output, outputGradient, inputGradient: FixtureTensor
    let indices: [Int]
    var kernel: Size2D { size(kernelPair) }
    var stride: Size2D { size(stridePair) }
    var padding: Size2D { size(paddingPair) }
    var dilation: Size2D { size(dilationPair) }

    private enum CodingKeys: String, CodingKey {
        case name, input, output, indices, outputGradient, inputGradient
        case kernelPair = "kernel", stridePair = "stride", paddingPair = "padding", dilationPair = "dilation"
    }
}

struct UnfoldFoldCase: NamedCase {
    let name: String
    private let kernelPair, stridePair, paddingPair, dilationPair: [Int]
    let input, columns, foldColumns, foldImage: FixtureTensor
    var kernel: Size2D { size(kernelPair) }
    var stride: Size2D { size(stridePair) }
    var padding: Size2D { size(paddingPair) }
    var dilation: Size2D { size(dilationPair) }

    private enum CodingKeys: String, CodingKey {
        case name, input, columns, foldColumns, foldImage
        case kernelPair = "kernel", stridePair = "stride", paddingPair = "padding", dilationPair = "dilation"
    }
}

/// One call PyTorch accepted (with its output shape) or rejected (with its message).
struct RuleCase: NamedCase {
    let name: String
    let op: String
    let accepted: Bool
    let message: String?
    let outputShape: [Int]?
    let inputShape: [Int]
    let weightShape: [Int]?
    let biasShape: [Int]?
    private let kernelPair, stridePair, paddingPair, outputPaddingPair, dilationPair: [Int]?

    private enum CodingKeys: String, CodingKey {
        case name, op, accepted, message, outputShape, inputShape, weightShape, biasShape
        case kernelPair = "kernel", stridePair = "stride", paddingPair = "padding"
        case outputPaddingPair = "outputPadding", dilationPair = "dilation"
    }

    /// Runs the case's operation on zeros in Kernels and returns the output shape.
    func run() throws -> [Int] {
        let x = try Tensor(shape: inputShape)
        let stride = size(try #require(stridePair)), padding = size(try #require(paddingPair))
        let dilation = size(try #require(dilationPair))
        switch op {
        case "conv2d":
            let bias = try biasShape.map { try Tensor(shape: $0) }
            let conv = Conv2D(stride: stride, padding: padding, dilation: dilation)
            return try conv.forward(x, weight: try Tensor(shape: try #require(weightShape)), bias: bias).shape
        case "conv_transpose2d":
            let layer = ConvTranspose2D(stride: stride, padding: padding, outputPadding: size(try #require(outputPaddingPair)),
                                        dilation: dilation)
            return try layer.forward(x, weight: try Tensor(shape: try #require(weightShape))).shape
        case "max_pool2d":
            let pool = MaxPool2D(kernel: size(try #require(kernelPair)), stride: stride, padding: padding, dilation: dilation)
            return try pool.forward(x).output.shape
        case "unfold":
            let unfold = Im2Col(kernel: size(try #require(kernelPair)), stride: stride, padding: padding, dilation: dilation)
            return try unfold.columns(x).shape
        default:
            Issue.record("unknown op \(op) in rules.json")
            return []
        }
    }
}
