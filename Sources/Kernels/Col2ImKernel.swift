/// Adds one image's column matrix back into the image: the adjoint of ``im2col(image:geometry:columns:outputRows:leadingDimension:parallel:)``.
///
/// Every column entry is added to the pixel it was read from, so a pixel covered by nine
/// windows receives nine contributions (this is PyTorch's `F.fold`). Entries that fall in the
/// padding are dropped. `image` is accumulated into, not overwritten: zero it first for a
/// plain col2im. `outputRows` and `leadingDimension` select a band of the matrix as in im2col;
/// adding the bands of an image one after another equals adding the whole matrix.
///
/// The valid span of each column row is computed once per kernel tap; with stride 1 each
/// span is added as one contiguous vector `+=`. Channels are split across cores, so no two
/// threads ever write the same pixel.
///
/// - Complexity: O(columnRows · outputRows.count · outputWidth) reads and read-modify-writes.
func col2im(columns: UnsafePointer<Float>, geometry: ConvGeometry, image: UnsafeMutablePointer<Float>,
            outputRows: Range<Int>? = nil, leadingDimension: Int? = nil, parallel: Bool = true) {
    let g = geometry
    let band = outputRows ?? 0..<g.outputHeight
    let leadingDimension = leadingDimension ?? band.count * g.outputWidth
    let tapsPerChannel = g.kernel.height * g.kernel.width
    Parallel.forEach(g.channels, workPerItem: parallel ? tapsPerChannel * band.count * g.outputWidth : 0) { channels in
        for channel in channels {
            let plane = image + channel * g.inputPlaneSize
            for kh in 0..<g.kernel.height {
                let rowOffset = kh * g.dilation.height - g.padding.height
                let rows = validOutputRange(outputLength: g.outputHeight, stride: g.stride.height,
                                            offset: rowOffset, inputLength: g.height).clamped(to: band)
                for kw in 0..<g.kernel.width {
                    let columnOffset = kw * g.dilation.width - g.padding.width
                    let cols = validOutputRange(outputLength: g.outputWidth, stride: g.stride.width,
                                                offset: columnOffset, inputLength: g.width)
                    guard !cols.isEmpty else { continue }
                    let row = columns + (channel * tapsPerChannel + kh * g.kernel.width + kw) * leadingDimension
                    for outputRow in rows {
                        let source = row + (outputRow - band.lowerBound) * g.outputWidth + cols.lowerBound
                        let inputRow = outputRow * g.stride.height + rowOffset
                        let destination = plane + inputRow * g.width + cols.lowerBound * g.stride.width + columnOffset
                        if g.stride.width == 1 {
                            VectorOperations.add(source, into: destination, count: cols.count)
                        } else if g.stride.width == 2 {
                            VectorOperations.addToEvenElements(source, into: destination, count: cols.count)
                        } else {
                            for index in 0..<cols.count {
                                destination[index * g.stride.width] += source[index]
                            }
                        }
                    }
                }
            }
        }
    }
}
