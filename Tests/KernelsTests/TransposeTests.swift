import Testing
@testable import Kernels

/// ``VectorOperations/transpose(rows:columns:from:sourceStride:to:destinationStride:)`` against
/// element-by-element indexing: sizes that leave partial 16 × 16 tiles on either side or both,
/// one tile exactly, single rows and columns, and strides wider than the matrix, whose gaps
/// (like everything past the matrix) must stay untouched.
@Suite struct TransposeTests {
    @Test(arguments: [(1, 1), (1, 37), (37, 1), (16, 16), (17, 33), (128, 28), (5, 40)])
    func matchesIndexing(rows: Int, columns: Int) {
        let (sourceStride, destinationStride) = (columns + 3, rows + 5)
        let source = (0..<rows * sourceStride).map(Float.init)
        var destination = [Float](repeating: -1, count: columns * destinationStride + 7)
        source.withUnsafeBufferPointer { source in
            destination.withUnsafeMutableBufferPointer { destination in
                VectorOperations.transpose(rows: rows, columns: columns, from: source.baseAddress!, sourceStride: sourceStride,
                                           to: destination.baseAddress!, destinationStride: destinationStride)
            }
        }
        var expected = [Float](repeating: -1, count: destination.count)
        for row in 0..<rows {
            for column in 0..<columns { expected[column * destinationStride + row] = source[row * sourceStride + column] }
        }
        #expect(destination == expected, "\(rows)×\(columns)")
    }
}
