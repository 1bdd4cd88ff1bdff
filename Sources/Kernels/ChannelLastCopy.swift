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
        let paddedWidth = channelLastPaddedWidth
        for row in 0..<height {
            VectorOperations.transpose(rows: channels, columns: width, from: source + row * width,
                                       sourceStride: inputPlaneSize,
                                       to: destination + ((row + padding.height) * paddedWidth + padding.width) * channels,
                                       destinationStride: channels)
        }
    }
}
