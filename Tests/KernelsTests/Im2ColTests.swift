import Testing
@testable import Kernels

@Suite struct Im2ColTests {
    @Test func columnsMatchTheNaiveUnfoldOnRandomGeometries() throws {
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<60 {
            let geometry = RandomGeometry.draw(&generator)
            let x = Tensor.random(geometry.inputShape, using: &generator)
            let unfold = Im2Col(kernel: geometry.kernel, stride: geometry.params.stride,
                                padding: geometry.params.padding, dilation: geometry.params.dilation)
            let columns = try unfold.columns(x)
            #expect(columns.scalars == Reference.unfold(x, kernel: geometry.kernel, geometry.params), "\(geometry)")
        }
    }

    @Test func bandsWithALeadingDimensionAreSlicesOfTheWholeMatrix() throws {
        // im2col of a band of output rows into a wider matrix writes exactly the band's slice of
        // the full matrix and nothing else; col2im of the bands, one after another, adds up to
        // col2im of the whole.
        var generator = SeededGenerator(seed: 14)
        for _ in 0..<60 {
            let r = RandomGeometry.draw(&generator)
            let g = try ConvGeometry(batch: 1, channels: r.channels, height: r.height, width: r.width, kernel: r.kernel,
                                     stride: r.params.stride, padding: r.params.padding, dilation: r.params.dilation)
            let x = Tensor.random([1, r.channels, r.height, r.width], using: &generator)
            let whole = Reference.unfold(x, kernel: r.kernel, r.params)
            let c = Tensor.random([g.columnsPerImage], using: &generator)
            var expectedImage = [Float](repeating: 0, count: g.imageSize)
            expectedImage.withUnsafeMutableBufferPointer { col2im(columns: c.scalars, geometry: g, image: $0.baseAddress!) }
            var bandedImage = [Float](repeating: 0, count: g.imageSize)
            let bandHeight = Int.random(in: 1...g.outputHeight, using: &generator)
            for top in stride(from: 0, to: g.outputHeight, by: bandHeight) {
                let rows = top..<min(g.outputHeight, top + bandHeight)
                let width = rows.count * g.outputWidth
                let leadingDimension = width + 3
                let band = Self.band(x, g, rows: rows, leadingDimension: leadingDimension)
                Self.expectBand(band, isSliceOf: whole, g, rows: rows, leadingDimension: leadingDimension, "\(r)")
                var bandOfC = [Float](repeating: .nan, count: g.columnRows * leadingDimension)
                for row in 0..<g.columnRows {
                    let slice = row * g.outputPlaneSize + top * g.outputWidth
                    bandOfC.replaceSubrange(row * leadingDimension..<row * leadingDimension + width, with: c.scalars[slice..<slice + width])
                }
                bandedImage.withUnsafeMutableBufferPointer {
                    col2im(columns: bandOfC, geometry: g, image: $0.baseAddress!, outputRows: rows, leadingDimension: leadingDimension)
                }
            }
            #expect(relativeError(bandedImage, expectedImage.map(Double.init)) <= 1e-6, "\(r)")
        }
    }

    @Test func col2imIsTheAdjointOfIm2col() throws {
        // ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for every x and c: col2im adds back exactly what im2col read.
        var generator = SeededGenerator(seed: 12)
        for _ in 0..<80 {
            let geometry = RandomGeometry.draw(&generator)
            let unfold = Im2Col(kernel: geometry.kernel, stride: geometry.params.stride,
                                padding: geometry.params.padding, dilation: geometry.params.dilation)
            let x = Tensor.random(geometry.inputShape, using: &generator)
            let columns = try unfold.columns(x)
            let c = Tensor.random(columns.shape, using: &generator)
            let image = try unfold.image(c, shape: x.shape)
            let left = dot(columns.scalars, c.scalars)
            let right = dot(x.scalars, image.scalars)
            #expect(abs(left - right) <= 1e-4 * max(1, abs(left)), "\(geometry): \(left) vs \(right)")
        }
    }

    @Test(arguments: [Size2D(height: 1, width: 2), Size2D(2)])
    func wideStrideTwoRowsTakeTheVectorPathCorrectly(stride: Size2D) throws {
        // Rows of 9 to 40 outputs: the stride-2 gather and scatter-add run eight at a time plus
        // a scalar tail; widths around multiples of 8 exercise both ends.
        var generator = SeededGenerator(seed: 13)
        for width in [17, 18, 19, 33, 34, 80] {
            for padding in [0, 1, 3] {
                let x = Tensor.random([2, 3, 5, width], using: &generator)
                let params = Reference.Params(stride: stride, padding: Size2D(height: 1, width: padding), dilation: 1)
                let unfold = Im2Col(kernel: 3, stride: stride, padding: params.padding)
                let columns = try unfold.columns(x)
                #expect(columns.scalars == Reference.unfold(x, kernel: 3, params), "width \(width) padding \(padding)")
                let c = Tensor.random(columns.shape, using: &generator)
                let image = try unfold.image(c, shape: x.shape)
                let left = dot(columns.scalars, c.scalars), right = dot(x.scalars, image.scalars)
                #expect(abs(left - right) <= 1e-4 * max(1, abs(left)), "width \(width) padding \(padding)")
            }
        }
    }

    @Test(arguments: [false, true])
    func strideTwoRowsMatchTheNaiveUnfoldWithAndWithoutTheVectorKernel(vectorized: Bool) throws {
        // The AVX-512 stride-2 kernel (on CPUs with it; on AVX2-only CPUs the AVX2 one, for rows
        // of up to 16 outputs) and the scalar loop it replaces: rows of 1 to 40 outputs (one
        // partial 16- or 8-lane step up to several), padding reaching past a whole step, dilated
        // taps, a band of rows into a wider matrix whose slack stays untouched (the AVX2 kernel's
        // steps spill onto the next output row, never past the band's last).
        var generator = SeededGenerator(seed: 15)
        for _ in 0..<150 {
            let kernel = Size2D(height: Int.random(in: 1...3, using: &generator), width: Int.random(in: 1...4, using: &generator))
            let params = Reference.Params(stride: Size2D(height: Int.random(in: 1...2, using: &generator), width: 2),
                                          padding: Size2D(height: Int.random(in: 0...2, using: &generator),
                                                          width: [0, 1, 3, 17].randomElement(using: &generator)!),
                                          dilation: Size2D(height: 1, width: Int.random(in: 1...2, using: &generator)))
            let (height, width) = (Int.random(in: 4...9, using: &generator), Int.random(in: 8...80, using: &generator))
            guard let g = try? ConvGeometry(batch: 1, channels: 2, height: height, width: width, kernel: kernel,
                                            stride: params.stride, padding: params.padding, dilation: params.dilation)
            else { continue }
            let x = Tensor.random([1, 2, height, width], using: &generator)
            let whole = Reference.unfold(x, kernel: kernel, params)
            let top = Int.random(in: 0..<g.outputHeight, using: &generator)
            let rows = top..<Int.random(in: top + 1...g.outputHeight, using: &generator)
            let leadingDimension = rows.count * g.outputWidth + 5
            let band = Self.band(x, g, rows: rows, leadingDimension: leadingDimension, vectorized: vectorized)
            Self.expectBand(band, isSliceOf: whole, g, rows: rows, leadingDimension: leadingDimension, "\(g)")
        }
    }

    /// im2col of output rows `rows` of a one-image `x` into a NaN-filled matrix whose rows are
    /// `leadingDimension` floats apart.
    static func band(_ x: Tensor, _ g: ConvGeometry, rows: Range<Int>, leadingDimension: Int, vectorized: Bool = true) -> [Float] {
        var band = [Float](repeating: .nan, count: g.columnRows * leadingDimension)
        x.scalars.withUnsafeBufferPointer { image in
            band.withUnsafeMutableBufferPointer {
                im2col(image: image.baseAddress!, geometry: g, columns: $0.baseAddress!, outputRows: rows,
                       leadingDimension: leadingDimension, vectorized: vectorized)
            }
        }
        return band
    }

    /// Each row of `band` holds the band's slice of the whole column matrix `whole`, and the
    /// rest of the row (up to `leadingDimension`) is untouched (NaN).
    static func expectBand(_ band: [Float], isSliceOf whole: [Float], _ g: ConvGeometry, rows: Range<Int>,
                           leadingDimension: Int, _ comment: String) {
        let width = rows.count * g.outputWidth
        for row in 0..<g.columnRows {
            let slice = row * g.outputPlaneSize + rows.lowerBound * g.outputWidth
            #expect(Array(band[row * leadingDimension..<row * leadingDimension + width]) == Array(whole[slice..<slice + width]),
                    "\(comment) rows \(rows)")
            #expect(band[row * leadingDimension + width..<(row + 1) * leadingDimension].allSatisfy { $0.isNaN }, "\(comment): wrote past the band")
        }
    }

    @Test func stridedDilatedCol2imCountsCoverage() throws {
        // Kernel 2, stride 2, dilation 2 on a 1×6 row: windows start at 0 and 2 and read
        // {0, 2} and {2, 4}; so column-of-ones folds back to coverage counts [1,0,2,0,1,0].
        let unfold = Im2Col(kernel: Size2D(height: 1, width: 2), stride: Size2D(height: 1, width: 2),
                            dilation: Size2D(height: 1, width: 2))
        let ones = try Tensor(shape: [1, 2, 2], repeating: 1)
        let coverage = try unfold.image(ones, shape: [1, 1, 1, 6])
        #expect(coverage.scalars == [1, 0, 2, 0, 1, 0])
    }

    @Test func imageRejectsColumnsOfTheWrongShape() throws {
        let unfold = Im2Col(kernel: 3, padding: 1)
        let wrong = try Tensor(shape: [1, 9, 8], repeating: 0)
        expectKernelError("columns") { _ = try unfold.image(wrong, shape: [1, 1, 3, 3]) }
    }
}
