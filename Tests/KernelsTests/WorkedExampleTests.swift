import Testing
import Kernels

/// The hand-checked cases from the issue: numbers worked out on paper, not by this code.
@Suite struct WorkedExampleTests {
    @Test func col2imOfIm2colCountsWindowsPerPixel() throws {
        // 3×3 image 1…9, kernel 3, stride 1, padding 1: corners are covered by 4 windows,
        // edges by 6, the centre by 9.
        let x = try Tensor(shape: [1, 1, 3, 3], scalars: (1...9).map(Float.init))
        let unfold = Im2Col(kernel: 3, stride: 1, padding: 1)
        let roundTrip = try unfold.image(try unfold.columns(x), shape: x.shape)
        #expect(roundTrip.scalars == [4, 12, 12, 24, 45, 36, 28, 48, 36])
    }

    @Test func gradientNotebookCase() throws {
        // 7×7 image 0…48, 3×3 filter 12 − (0…8), padding 1, stride 2, dY all ones.
        let x = try Tensor(shape: [1, 1, 7, 7], scalars: (0..<49).map(Float.init))
        let w = try Tensor(shape: [1, 1, 3, 3], scalars: (0..<9).map { Float(12 - $0) })
        let conv = Conv2D(stride: 2, padding: 1)
        let y = try conv.forward(x, weight: w)
        #expect(y.shape == [1, 1, 4, 4])
        #expect(y.scalars.reduce(0, +) == 19200)

        let dy = try Tensor(shape: y.shape, repeating: 1)
        let g = try conv.backward(dy, input: x, weight: w)
        let evenRow: [Float] = [8, 16, 8, 16, 8, 16, 8]
        let oddRow: [Float] = [16, 32, 16, 32, 16, 32, 16]
        for row in 0..<7 {
            #expect(Array(g.input.scalars[row * 7..<(row + 1) * 7]) == (row.isMultiple(of: 2) ? evenRow : oddRow), "row \(row)")
        }
        #expect(g.weight.scalars == [216, 288, 216, 288, 384, 288, 216, 288, 216])
        #expect(g.bias.scalars == [16])
    }
}
