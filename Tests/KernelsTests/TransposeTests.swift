import Testing
@testable import Kernels
import KernelsSIMD

/// The tiled transposes this CPU runs (8 × 8 with AVX2, 16 × 16 with AVX-512), and
/// ``VectorOperations/transpose(rows:columns:from:sourceStride:to:destinationStride:)`` over
/// them, against element-by-element indexing: sizes that leave partial tiles on either side or
/// both, one tile exactly, single rows and columns, and strides wider than the matrix, whose gaps
/// (like everything past the matrix) must stay untouched.
@Suite struct TransposeTests {
    /// The transposes to check: each build this CPU runs, then whatever VectorOperations picks.
    static var transposes: [(name: String, run: (UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>, Int) -> Void)] {
        DirectConvolution.InstructionSet.allCases.filter(\.isSupported).map { set in
            ("\(set)", set == .avx512 ? { kernels_transpose_avx512($0, $1, $2, $3, $4, $5) }
                                       : { kernels_transpose_avx2($0, $1, $2, $3, $4, $5) })
        } + [("VectorOperations", { source, rows, columns, sourceStride, destination, destinationStride in
            VectorOperations.transpose(rows: rows, columns: columns, from: source, sourceStride: sourceStride,
                                       to: destination, destinationStride: destinationStride)
        })]
    }

    @Test(arguments: [(1, 1), (1, 37), (37, 1), (8, 8), (9, 15), (16, 16), (17, 33), (128, 28), (5, 40)])
    func matchesIndexing(rows: Int, columns: Int) {
        let (sourceStride, destinationStride) = (columns + 3, rows + 5)
        let source = (0..<rows * sourceStride).map(Float.init)
        var expected = [Float](repeating: -1, count: columns * destinationStride + 7)
        for row in 0..<rows {
            for column in 0..<columns { expected[column * destinationStride + row] = source[row * sourceStride + column] }
        }
        for transpose in Self.transposes {
            var destination = [Float](repeating: -1, count: expected.count)
            source.withUnsafeBufferPointer { source in
                destination.withUnsafeMutableBufferPointer { destination in
                    transpose.run(source.baseAddress!, rows, columns, sourceStride, destination.baseAddress!, destinationStride)
                }
            }
            #expect(destination == expected, "\(rows)×\(columns) \(transpose.name)")
        }
    }
}

/// `kernels_pack_taps_avx512` and `_avx2`, the channel-last weight pack, against indexing: filter counts
/// that leave a partial tile, column runs that start and end mid-tile, and lanes past the rows
/// (the zero padding of a narrow block) and rows outside the run, which must stay untouched.
@Suite struct PackTapsTests {
    @Test(arguments: [(64, 7, 9, 0, 63), (37, 5, 9, 7, 41), (16, 64, 1, 16, 48), (3, 20, 25, 0, 500), (11, 3, 9, 5, 21)])
    func matchesIndexing(rows: Int, channels: Int, taps: Int, columnBegin: Int, columnEnd: Int) {
        for instructionSet in DirectConvolution.InstructionSet.allCases.filter(\.isSupported) {
            check(instructionSet, rows: rows, channels: channels, taps: taps, columnBegin: columnBegin, columnEnd: columnEnd)
        }
    }

    func check(_ instructionSet: DirectConvolution.InstructionSet, rows: Int, channels: Int, taps: Int, columnBegin: Int,
               columnEnd: Int) {
        let columns = channels * taps
        let width = (rows + 15) / 16 * 16
        let source = (0..<rows * columns).map(Float.init)
        var destination = [Float](repeating: -1, count: columns * width)
        let pack = instructionSet == .avx512 ? kernels_pack_taps_avx512 : kernels_pack_taps_avx2
        source.withUnsafeBufferPointer { source in
            destination.withUnsafeMutableBufferPointer { destination in
                pack(source.baseAddress, rows, columns, channels, taps, columnBegin, columnEnd, destination.baseAddress, width)
            }
        }
        var expected = [Float](repeating: -1, count: destination.count)
        for row in 0..<rows {
            for column in columnBegin..<columnEnd {
                let (channel, tap) = column.quotientAndRemainder(dividingBy: taps)
                expected[(tap * channels + channel) * width + row] = source[row * columns + column]
            }
        }
        #expect(destination == expected, "\(instructionSet)")
    }
}
