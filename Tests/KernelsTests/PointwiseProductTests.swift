import Testing
@testable import Kernels

/// ``PointwiseProduct`` (1×1 forward and backward-data by the product kernel) against float64
/// sums, with the images placed 0–15 floats off a cache line so the narrow first column block
/// takes every width, batches that do and do not divide among the cores (one image split by
/// rows), with and without bias; and the engine choosing it only where it pays.
@Suite struct PointwiseProductTests {
    static let cases: [(batch: Int, channels: Int, filters: Int, side: Int, offset: Int)] = [
        (1, 64, 16, 8, 0),     // one image: split by row blocks; aligned
        (3, 40, 10, 12, 3),    // odd batch; 144 positions, 3 floats off the line
        (2, 24, 6, 4, 8),      // 16 positions: the first block is half the row
        (4, 33, 7, 16, 15),    // 256 positions; last row block of 1
        (1, 8, 2, 3, 5),       // 9 positions: narrower than the first block
    ]

    @Test(arguments: 0..<5)
    func matchesFloat64Sums(index: Int) throws {
        guard let product = ProductKernel.preferred else { return }
        let c = Self.cases[index]
        let positions = c.side * c.side
        var generator = SeededGenerator(seed: 90 + UInt64(index))
        let x = Tensor.random([c.batch, c.channels, c.side, c.side], using: &generator).scalars
        let w = Tensor.random([c.filters, c.channels, 1, 1], using: &generator).scalars
        let bias = Tensor.random([c.filters], using: &generator).scalars
        let dy = Tensor.random([c.batch, c.filters, c.side, c.side], using: &generator).scalars
        let geometry = try ConvGeometry(batch: c.batch, channels: c.channels, height: c.side, width: c.side,
                                        kernel: Size2D(1), padding: Size2D(0), dilation: Size2D(1))
        let pointwise = PointwiseProduct(geometry: geometry, filters: c.filters, product: product)

        // Each buffer `offset` floats past a 64-byte boundary, with guards after it.
        func placed(_ count: Int, from values: [Float]?, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: (count + c.offset + 16) * 4, alignment: 64)
            defer { raw.deallocate() }
            let base = raw.bindMemory(to: Float.self, capacity: count + c.offset + 16)
            base.update(repeating: .nan, count: count + c.offset + 16)
            if let values { (base + c.offset).update(from: values, count: count) }
            body(base + c.offset)
            #expect((0..<c.offset).allSatisfy { base[$0].isNaN })
            #expect((0..<16).allSatisfy { base[c.offset + count + $0].isNaN })
            return Array(UnsafeBufferPointer(start: base + c.offset, count: count))
        }
        for withBias in [false, true] {
            var output: [Float] = []
            _ = placed(x.count, from: x) { input in
                output = placed(dy.count, from: nil) { out in
                    bias.withUnsafeBufferPointer { bias in
                        pointwise.forward(input: input, weight: w, bias: withBias ? bias.baseAddress : nil, output: out)
                    }
                }
            }
            var expected = [Double](repeating: 0, count: dy.count)
            for n in 0..<c.batch { for f in 0..<c.filters { for p in 0..<positions {
                var sum = withBias ? Double(bias[f]) : 0
                for ch in 0..<c.channels { sum += Double(w[f * c.channels + ch]) * Double(x[(n * c.channels + ch) * positions + p]) }
                expected[(n * c.filters + f) * positions + p] = sum
            } } }
            #expect(relativeError(output, expected) <= 1e-5)
        }
        var inputGradient: [Float] = []
        _ = placed(dy.count, from: dy) { gradient in
            inputGradient = placed(x.count, from: nil) { out in
                pointwise.backwardData(outputGradient: gradient, weight: w, inputGradient: out)
            }
        }
        var expected = [Double](repeating: 0, count: x.count)
        for n in 0..<c.batch { for ch in 0..<c.channels { for p in 0..<positions {
            var sum = 0.0
            for f in 0..<c.filters { sum += Double(w[f * c.channels + ch]) * Double(dy[(n * c.filters + f) * positions + p]) }
            expected[(n * c.channels + ch) * positions + p] = sum
        } } }
        #expect(relativeError(inputGradient, expected) <= 1e-5)
    }

    /// Forward where filters ≤ channels / 4 or channels ≤ 64, and the plane is a multiple of 16
    /// positions; backward-data the other way round; neither at 7×7.
    @Test func runsOnlyWhereItPays() throws {
        let conv = Conv2D()
        func engine(_ channels: Int, _ filters: Int, _ side: Int) throws -> ConvolutionEngine {
            try conv.makeEngine(input: [2, channels, side, side], weight: [filters, channels, 1, 1])
        }
        let available = ProductKernel.preferred != nil
        #expect((try engine(256, 64, 56).pointwiseProduct?.forwardPays ?? false) == available)
        #expect((try engine(64, 256, 56).pointwiseProduct?.backwardDataPays ?? false) == available)
        // 64 deep: both ways.
        #expect((try engine(256, 64, 56).pointwiseProduct?.backwardDataPays ?? false) == available)
        #expect((try engine(64, 256, 56).pointwiseProduct?.forwardPays ?? false) == available)
        // Deeper, growing: OpenBLAS.
        #expect(try engine(512, 128, 28).pointwiseProduct?.backwardDataPays != true)
        #expect(try engine(128, 512, 28).pointwiseProduct?.forwardPays != true)
        #expect(try engine(96, 384, 28).pointwiseProduct?.forwardPays != true)
        #expect(try engine(2048, 512, 7).pointwiseProduct?.forwardPays != true)
        #expect(try engine(32, 64, 7).pointwiseProduct?.forwardPays != true)
    }
}
