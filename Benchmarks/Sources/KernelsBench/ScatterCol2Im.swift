import Kernels

/// The textbook col2im the library's is measured against: one bounds check and one scattered
/// `+=` per column entry, on one thread (Caffe's `col2im_cpu` before any optimization).
///
/// - Complexity: O(columnRows · outputPlaneSize).
enum ScatterCol2Im {
    static func accumulate(columns: UnsafePointer<Float>, geometry g: ConvGeometry,
                           into image: UnsafeMutablePointer<Float>) {
        var entry = 0
        for channel in 0..<g.channels {
            let plane = image + channel * g.inputPlaneSize
            for kernelRow in 0..<g.kernel.height {
                for kernelColumn in 0..<g.kernel.width {
                    for outputRow in 0..<g.outputHeight {
                        let inputRow = outputRow * g.stride.height - g.padding.height + kernelRow * g.dilation.height
                        for outputColumn in 0..<g.outputWidth {
                            let inputColumn = outputColumn * g.stride.width - g.padding.width + kernelColumn * g.dilation.width
                            if inputRow >= 0 && inputRow < g.height && inputColumn >= 0 && inputColumn < g.width {
                                plane[inputRow * g.width + inputColumn] += columns[entry]
                            }
                            entry += 1
                        }
                    }
                }
            }
        }
    }
}
