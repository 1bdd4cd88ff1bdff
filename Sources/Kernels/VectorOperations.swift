import KernelsSIMD

/// Explicitly vectorized loops for the hot contiguous runs of col2im and bias handling.
/// Written with `SIMD8<Float>` (one AVX register) so they vectorize whatever the optimizer
/// decides about pointer aliasing.
enum VectorOperations {
    /// `destination[j·destinationStride + i] = source[i·sourceStride + j]` for the
    /// `rows × columns` matrix at `source`: by 16 × 16 tiles in AVX-512 registers or 8 × 8 in
    /// AVX2 ones where the CPU has them, else element by element.
    static func transpose(rows: Int, columns: Int, from source: UnsafePointer<Float>, sourceStride: Int,
                          to destination: UnsafeMutablePointer<Float>, destinationStride: Int) {
        if DirectConvolution.InstructionSet.avx512.isSupported {
            kernels_transpose_avx512(source, rows, columns, sourceStride, destination, destinationStride)
            return
        }
        if DirectConvolution.InstructionSet.avx2.isSupported {
            kernels_transpose_avx2(source, rows, columns, sourceStride, destination, destinationStride)
            return
        }
        for row in 0..<rows {
            for column in 0..<columns {
                destination[column * destinationStride + row] = source[row * sourceStride + column]
            }
        }
    }

    /// `destination[i] += source[i]` for `i` in `0..<count`.
    @inline(__always)
    static func add(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        var index = 0
        let sourceRaw = UnsafeRawPointer(source)
        let destinationRaw = UnsafeMutableRawPointer(destination)
        while index + 8 <= count {
            let offset = index &* MemoryLayout<Float>.stride
            let sum = destinationRaw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                + sourceRaw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            destinationRaw.storeBytes(of: sum, toByteOffset: offset, as: SIMD8<Float>.self)
            index &+= 8
        }
        while index < count {
            destination[index] += source[index]
            index &+= 1
        }
    }

    /// Copies a `rows × columns` block between two row-major matrices whose rows are
    /// `sourceStride` and `destinationStride` floats apart, adding `rowBias[r]` to row `r` when
    /// given: moves whole images in and out of a block of side-by-side images.
    static func copyMatrix(rows: Int, columns: Int, from source: UnsafePointer<Float>, sourceStride: Int,
                           to destination: UnsafeMutablePointer<Float>, destinationStride: Int,
                           rowBias: UnsafePointer<Float>? = nil) {
        for row in 0..<rows {
            let target = destination + row * destinationStride
            target.update(from: source + row * sourceStride, count: columns)
            if let rowBias { add(rowBias[row], into: target, count: columns) }
        }
    }

    /// `destination[i] = source[i] + value` for `i` in `0..<count`: short rows (an output row
    /// of a strided layer, 28 floats) inline, where a `memmove` call per row cost more than the
    /// copy.
    @inline(__always)
    static func copy(_ source: UnsafePointer<Float>, adding value: Float, to destination: UnsafeMutablePointer<Float>,
                     count: Int) {
        var index = 0
        let sourceRaw = UnsafeRawPointer(source)
        let destinationRaw = UnsafeMutableRawPointer(destination)
        let vector = SIMD8<Float>(repeating: value)
        while index + 8 <= count {
            let offset = index &* MemoryLayout<Float>.stride
            destinationRaw.storeBytes(of: sourceRaw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + vector,
                                      toByteOffset: offset, as: SIMD8<Float>.self)
            index &+= 8
        }
        while index < count {
            destination[index] = source[index] + value
            index &+= 1
        }
    }

    /// `destination[i] += value` for `i` in `0..<count`.
    @inline(__always)
    static func add(_ value: Float, into destination: UnsafeMutablePointer<Float>, count: Int) {
        var index = 0
        let splat = SIMD8<Float>(repeating: value)
        let destinationRaw = UnsafeMutableRawPointer(destination)
        while index + 8 <= count {
            let offset = index &* MemoryLayout<Float>.stride
            let sum = destinationRaw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + splat
            destinationRaw.storeBytes(of: sum, toByteOffset: offset, as: SIMD8<Float>.self)
            index &+= 8
        }
        while index < count {
            destination[index] += value
            index &+= 1
        }
    }

    /// The sum of `source[0..<count]`: float lanes over blocks of 512 elements, each block's
    /// partial flushed into a `Double`, so long reductions (bias gradients over large batches)
    /// keep float32 error per block rather than per whole sum.
    static func sum(_ source: UnsafePointer<Float>, count: Int) -> Double {
        let blockLength = 512
        let sourceRaw = UnsafeRawPointer(source)
        var total = 0.0
        var blockStart = 0
        while blockStart < count {
            let blockEnd = min(count, blockStart + blockLength)
            var lanes = SIMD8<Float>.zero
            var index = blockStart
            while index + 8 <= blockEnd {
                lanes += sourceRaw.loadUnaligned(fromByteOffset: index &* MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
                index &+= 8
            }
            var partial = Double(lanes.sum())
            while index < blockEnd {
                partial += Double(source[index])
                index &+= 1
            }
            total += partial
            blockStart = blockEnd
        }
        return total
    }

    /// `destination[i] = source[2·i]` for `i` in `0..<count`: the stride-2 gather of im2col,
    /// eight outputs per step from one 16-float load (`evenHalf` is a vector shuffle).
    @inline(__always)
    static func copyEvenElements(_ source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, count: Int) {
        var index = 0
        let sourceRaw = UnsafeRawPointer(source)
        let destinationRaw = UnsafeMutableRawPointer(destination)
        // The last vector reads source[2·i + 15]; stop while that is still inside the run.
        while index + 8 < count {
            let pair = sourceRaw.loadUnaligned(fromByteOffset: 2 &* index &* MemoryLayout<Float>.stride, as: SIMD16<Float>.self)
            destinationRaw.storeBytes(of: pair.evenHalf, toByteOffset: index &* MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
            index &+= 8
        }
        while index < count {
            destination[index] = source[2 &* index]
            index &+= 1
        }
    }

    /// `destination[2·i] += source[i]` for `i` in `0..<count`: the stride-2 scatter-add of col2im.
    @inline(__always)
    static func addToEvenElements(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        var index = 0
        let sourceRaw = UnsafeRawPointer(source)
        let destinationRaw = UnsafeMutableRawPointer(destination)
        while index + 8 < count {
            let offset = 2 &* index &* MemoryLayout<Float>.stride
            var pair = destinationRaw.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            pair.evenHalf += sourceRaw.loadUnaligned(fromByteOffset: index &* MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
            destinationRaw.storeBytes(of: pair, toByteOffset: offset, as: SIMD16<Float>.self)
            index &+= 8
        }
        while index < count {
            destination[2 &* index] += source[index]
            index &+= 1
        }
    }
}
