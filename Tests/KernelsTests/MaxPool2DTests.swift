import Testing
@testable import Kernels

@Suite struct MaxPool2DTests {
    @Test func picksTheMaximumAndItsIndexInThePlane() throws {
        // 4×4 plane, 2×2 windows, stride 2: maxima 5, 7, 13, 15 at those flat positions.
        let x = Tensor.iota([1, 1, 4, 4])
        let p = try MaxPool2D(kernel: 2).forward(x)
        #expect(p.output.shape == [1, 1, 2, 2])
        #expect(p.output.scalars == [5, 7, 13, 15])
        #expect(p.indices == [5, 7, 13, 15])
    }

    @Test func indicesAreWithinEachPlane() throws {
        // Second channel and second image: indices restart at 0 for every plane.
        let x = Tensor.iota([2, 2, 2, 2])
        let p = try MaxPool2D(kernel: 2).forward(x)
        #expect(p.output.scalars == [3, 7, 11, 15])
        #expect(p.indices == [3, 3, 3, 3])
    }

    @Test func firstMaximumWinsTies() throws {
        let x = try Tensor(shape: [1, 1, 2, 3], scalars: [1, 4, 4, 4, 2, 4])
        let p = try MaxPool2D(kernel: Size2D(height: 2, width: 3)).forward(x)
        #expect(p.output.scalars == [4])
        #expect(p.indices == [1])
    }

    @Test func nanPropagatesWithItsIndex() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [1, .nan, 9, 3])
        let p = try MaxPool2D(kernel: 2).forward(x)
        #expect(p.output.scalars[0].isNaN)
        #expect(p.indices == [1])
    }

    @Test func paddingIsNegativeInfinityAndWindowsOverlap() throws {
        // 3×3 of −1…−9 (all negative, so zero padding would win if padding were zeros),
        // kernel 3, stride 1, padding 1: every window's maximum is the largest neighbour.
        let x = try Tensor(shape: [1, 1, 3, 3], scalars: (1...9).map { -Float($0) })
        let pool = MaxPool2D(kernel: 3, stride: 1, padding: 1)
        let p = try pool.forward(x)
        #expect(p.output.scalars == [-1, -1, -2, -1, -1, -2, -4, -4, -5])
        #expect(p.indices == [0, 0, 1, 0, 0, 1, 3, 3, 4])
        // Overlapping windows that chose the same pixel accumulate its gradient.
        let dy = try Tensor(shape: [1, 1, 3, 3], repeating: 1)
        let dx = try pool.backward(dy, indices: p.indices, inputShape: x.shape)
        #expect(dx.scalars == [4, 2, 0, 2, 1, 0, 0, 0, 0])
    }

    @Test func dilatedWindowsSkipPixels() throws {
        // Kernel 2, dilation 2, stride 1 on a 1×4 row [0, 9, 1, 8]: windows read {0,1} and {9,8}.
        let x = try Tensor(shape: [1, 1, 1, 4], scalars: [0, 9, 1, 8])
        let p = try MaxPool2D(kernel: Size2D(height: 1, width: 2), stride: 1, dilation: Size2D(height: 1, width: 2)).forward(x)
        #expect(p.output.scalars == [1, 9])
        #expect(p.indices == [2, 1])
    }

    @Test func backwardRoutesEachGradientToItsIndex() throws {
        var generator = SeededGenerator(seed: 41)
        let x = Tensor.random([2, 3, 7, 6], using: &generator)
        let pool = MaxPool2D(kernel: 3, stride: 2, padding: 1)
        let p = try pool.forward(x)
        let dy = Tensor.random(p.output.shape, using: &generator)
        let dx = try pool.backward(dy, indices: p.indices, inputShape: x.shape)
        // Reference: scatter-add in float64 per plane.
        var expected = [Double](repeating: 0, count: x.count)
        let outputPlane = p.output.shape[2] * p.output.shape[3]
        for (position, index) in p.indices.enumerated() {
            expected[(position / outputPlane) * 42 + index] += Double(dy.scalars[position])
        }
        #expect(relativeError(dx.scalars, expected) <= 1e-6)
        // And each chosen value really is its window's value.
        for (position, index) in p.indices.enumerated() {
            #expect(p.output.scalars[position] == x.scalars[(position / outputPlane) * 42 + index])
        }
    }

    @Test func rejectsPaddingAboveHalfTheKernel() throws {
        let x = try Tensor(shape: [1, 1, 5, 5], repeating: 0)
        expectKernelError("padding") { _ = try MaxPool2D(kernel: 3, padding: 2).forward(x) }
    }

    @Test func rejectsIndicesOutsideThePlaneWithoutWriting() throws {
        let pool = MaxPool2D(kernel: 2)
        let dy = try Tensor(shape: [1, 1, 1, 1], repeating: 1)
        expectKernelError("indices") { _ = try pool.backward(dy, indices: [4], inputShape: [1, 1, 2, 2]) }
        expectKernelError("indices") { _ = try pool.backward(dy, indices: [0, 1], inputShape: [1, 1, 2, 2]) }
    }
}
