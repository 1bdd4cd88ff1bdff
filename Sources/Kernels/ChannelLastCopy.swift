import KernelsSIMD
/// One image copied channel-last and zero-padded, `[y][x][c]` with `H + 2·pH` rows of
/// `W + 2·pW` pixels: the layout the channel-last convolution and weight gradient read, where a
/// pixel's channels, and a kernel row's pixels, are contiguous.
extension ConvGeometry {
    /// Pixels per row of the channel-last copy.
    var channelLastPaddedWidth: Int { width + 2 * padding.width }

    /// Floats of the channel-last copy (only meaningful where ``channelLastCopyFits``).
    var channelLastCopyFloats: Int { (height + 2 * padding.height) * channelLastPaddedWidth * channels }

    /// Whether the copy stays within ``CheckedArithmetic/maximumImageCopyFloats``: padding far
    /// beyond the image could make it huge, or overflow.
    var channelLastCopyFits: Bool {
        CheckedArithmetic.product(height + 2 * padding.height, width + 2 * padding.width, channels,
                                  isAtMost: CheckedArithmetic.maximumImageCopyFloats)
    }

    /// Writes image `source` (`[c][y][x]`) into the copy at `destination`, one transpose per
    /// row. Writes only the image's pixels: the caller zeroes the padding once, and it stays
    /// zero across images.
    func copyChannelLast(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>) {
        copyChannelLast(source, paddedRows: padding.height..<(padding.height + height),
                        into: destination + padding.height * channelLastPaddedWidth * channels)
    }

    /// Writes rows `paddedRows` of the copy (padded row `r` at `destination + (r − lowerBound)·
    /// paddedWidth·C`): an image row by one transpose, a padding row as zeros. Leaves the
    /// left and right padding of image rows unwritten, as above.
    func copyChannelLast(_ source: UnsafePointer<Float>, paddedRows: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        let rowFloats = channelLastPaddedWidth * channels
        for paddedRow in paddedRows {
            let target = destination + (paddedRow - paddedRows.lowerBound) * rowFloats
            let row = paddedRow - padding.height
            guard row >= 0, row < height else {
                target.update(repeating: 0, count: rowFloats)
                continue
            }
            // The image's next row, one line-run in each of `C` planes: too many short streams
            // for the hardware prefetcher, which left each transpose waiting on L3 or memory.
            // Call-by-call pairs' median ratio: resnet-c3s2 forward 0.965, 8×128×56×56 → 256
            // stride 2 0.962; 14×14 to 27×27 planes 0.996–1.001.
            if row + 1 < height {
                let ahead = source + (row + 1) * width
                let lines = (width + 15) / 16 + 1
                for channel in 0..<channels {
                    let start = ahead + channel * inputPlaneSize
                    for line in 0..<lines { kernels_prefetch(start + min(line * 16, width - 1)) }
                }
            }
            VectorOperations.transpose(rows: channels, columns: width, from: source + row * width, sourceStride: inputPlaneSize,
                                       to: target + padding.width * channels, destinationStride: channels)
        }
    }
}
