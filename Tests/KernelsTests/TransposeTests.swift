import Testing
@testable import Kernels
import KernelsSIMD

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

/// `kernels_pack_taps_avx512`, the channel-last weight pack, against indexing: filter counts
/// that leave a partial tile, column runs that start and end mid-tile, and lanes past the rows
/// (the zero padding of a narrow block) and rows outside the run, which must stay untouched.
@Suite struct PackTapsTests {
    @Test(arguments: [(64, 7, 9, 0, 63), (37, 5, 9, 7, 41), (16, 64, 1, 16, 48), (3, 20, 25, 0, 500)])
    func matchesIndexing(rows: Int, channels: Int, taps: Int, columnBegin: Int, columnEnd: Int) {
        guard ProductKernel.preferred != nil else { return }
        let columns = channels * taps
        let width = (rows + 15) / 16 * 16
        let source = (0..<rows * columns).map(Float.init)
        var destination = [Float](repeating: -1, count: columns * width)
        source.withUnsafeBufferPointer { source in
            destination.withUnsafeMutableBufferPointer { destination in
                kernels_pack_taps_avx512(source.baseAddress, rows, columns, channels, taps, columnBegin, columnEnd,
                                         destination.baseAddress, width)
            }
        }
        var expected = [Float](repeating: -1, count: destination.count)
        for row in 0..<rows {
            for column in columnBegin..<columnEnd {
                let (channel, tap) = column.quotientAndRemainder(dividingBy: taps)
                expected[(tap * channels + channel) * width + row] = source[row * columns + column]
            }
        }
        #expect(destination == expected)
    }
}
