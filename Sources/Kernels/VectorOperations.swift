/// Explicitly vectorized loops for the hot contiguous runs of col2im and bias handling.
/// Written with `SIMD8<Float>` (one AVX register) so they vectorize whatever the optimizer
/// decides about pointer aliasing.
enum VectorOperations {
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
}
