import KernelsSIMD

/// Lays out one image's sliding windows as the columns of a matrix, for GEMM.
///
/// Row `(c·KH + kh)·KW + kw` of `columns` holds, for every output position, the input pixel
/// that kernel tap `(kh, kw)` of channel `c` sees (zero where it falls in the padding). This is
/// the layout of PyTorch's `F.unfold`.
///
/// `outputRows` picks a band of output rows (all of them by default): column
/// `(oh − outputRows.lowerBound)·OW + ow` then holds output position `(oh, ow)`, so a band is
/// the matching slice of the full matrix. Rows of `columns` are `leadingDimension` floats
/// apart (the band's width by default), so several bands or images can sit side by side in one
/// wider matrix.
///
/// For each kernel tap the valid output rows and columns are computed once
/// (``validOutputRange(outputLength:stride:offset:inputLength:)``); the padding is then filled
/// with zeros in bulk and, with stride 1, each valid run is one contiguous copy.
/// Rows are split across cores (each writes only its own row), so even a one-channel image
/// uses every core. With a horizontal stride of 2 on AVX-512 CPUs (unless `vectorized` is
/// false) an AVX-512 kernel writes the rows instead, 16 output columns per step
/// (`kernels_im2col_stride2_avx512`): the loop below pays a call, two zero fills and a range
/// check per output row, which on 7×7 and 14×14 outputs was a sixth of a forward pass. On
/// AVX2-only CPUs an AVX2 kernel does, 8 a step, for output rows of at most 16.
///
/// - Complexity: O(columnRows · outputRows.count · outputWidth) reads and writes.
func im2col(image: UnsafePointer<Float>, geometry: ConvGeometry, columns: UnsafeMutablePointer<Float>,
            outputRows: Range<Int>? = nil, leadingDimension: Int? = nil, parallel: Bool = true, vectorized: Bool = true) {
    let g = geometry
    let band = outputRows ?? 0..<g.outputHeight
    let width = band.count * g.outputWidth
    let leadingDimension = leadingDimension ?? width
    let tapsPerChannel = g.kernel.height * g.kernel.width
    let stride2Kernel = vectorized && g.stride.width == 2 ? stride2Im2col(outputWidth: g.outputWidth) : nil
    Parallel.forEach(g.columnRows, workPerItem: parallel ? width : 0) { columnRows in
        if let stride2Kernel {
            stride2Kernel(image, g.height, g.width, g.kernel.height, g.kernel.width, g.stride.height,
                                          g.padding.height, g.padding.width, g.dilation.height, g.dilation.width,
                                          g.outputWidth, band.lowerBound, band.upperBound,
                                          columnRows.lowerBound, columnRows.upperBound, columns, leadingDimension)
            return
        }
        for columnRow in columnRows {
            let channel = columnRow / tapsPerChannel
            let kh = (columnRow / g.kernel.width) % g.kernel.height
            let kw = columnRow % g.kernel.width
            let plane = image + channel * g.inputPlaneSize
            let rowOffset = kh * g.dilation.height - g.padding.height
            let valid = validOutputRange(outputLength: g.outputHeight, stride: g.stride.height,
                                         offset: rowOffset, inputLength: g.height).clamped(to: band)
            // An empty intersection may lie outside the band; pin it to the band's start.
            let rows = valid.isEmpty ? band.lowerBound..<band.lowerBound : valid
            let columnOffset = kw * g.dilation.width - g.padding.width
            let cols = validOutputRange(outputLength: g.outputWidth, stride: g.stride.width,
                                        offset: columnOffset, inputLength: g.width)
            let row = columns + columnRow * leadingDimension
            // Output rows whose input row lies in the padding are all zero.
            row.update(repeating: 0, count: (rows.lowerBound - band.lowerBound) * g.outputWidth)
            (row + (rows.upperBound - band.lowerBound) * g.outputWidth)
                .update(repeating: 0, count: (band.upperBound - rows.upperBound) * g.outputWidth)
            for outputRow in rows {
                let destination = row + (outputRow - band.lowerBound) * g.outputWidth
                destination.update(repeating: 0, count: cols.lowerBound)
                (destination + cols.upperBound).update(repeating: 0, count: g.outputWidth - cols.upperBound)
                guard !cols.isEmpty else { continue }
                let inputRow = outputRow * g.stride.height + rowOffset
                let source = plane + inputRow * g.width + cols.lowerBound * g.stride.width + columnOffset
                if g.stride.width == 1 {
                    (destination + cols.lowerBound).update(from: source, count: cols.count)
                } else if g.stride.width == 2 {
                    VectorOperations.copyEvenElements(source, to: destination + cols.lowerBound, count: cols.count)
                } else {
                    let strided = destination + cols.lowerBound
                    for index in 0..<cols.count {
                        strided[index] = source[index * g.stride.width]
                    }
                }
            }
        }
    }
}

/// The vector kernel of im2col for a horizontal stride of 2 on this CPU, or nil: AVX-512's, or
/// on AVX2-only CPUs AVX2's for output rows of at most 16 (the loop pays a call, two zero fills
/// and a range check per output row). Call-by-call pairs on a 2-core AMD EPYC (Zen 3), the
/// loop ÷ the AVX2 kernel: 16×32×32×32 → 64 3×3 (rows of 16) forward 1.13, weight gradient
/// 1.20; 8×256×14×14 → 512 (7) forward 1.06; 8×128×28×28 → 256 (14) forward 1.02; but rows of
/// 28 and 56 0.98–0.99 (8×64×56×56 → 128 and 4×64×112×112 → 128 weight gradients,
/// 8×256×56×56 → 512 1×1 forward).
private func stride2Im2col(outputWidth: Int) -> (@convention(c) (UnsafePointer<Float>?, Int, Int, Int, Int, Int, Int, Int, Int,
                                                                 Int, Int, Int, Int, Int, Int, UnsafeMutablePointer<Float>?, Int) -> Void)? {
    if DirectConvolution.InstructionSet.avx512.isSupported { return kernels_im2col_stride2_avx512 }
    return kernels_simd_has_avx2_fma() && outputWidth <= 16 ? kernels_im2col_stride2_avx2 : nil
}
