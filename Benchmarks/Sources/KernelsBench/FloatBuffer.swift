/// A heap buffer of `Float` filled with reproducible pseudo-random values in [-1, 1), freed
/// when the last reference goes; benchmarks pass its pointer to the raw-pointer kernels.
final class FloatBuffer {
    let count: Int
    let pointer: UnsafeMutablePointer<Float>

    init(randomCount count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        self.count = count
        // 64-byte alignment, as a real caller's allocator would give large buffers.
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, count))
        var state = seed
        for index in 0..<count {
            // xorshift64: cheap, deterministic, and good enough that no value is denormal or zero-heavy.
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            pointer[index] = Float(state >> 40) / Float(1 << 23) - 1
        }
    }

    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    var byteCount: Int { count * MemoryLayout<Float>.stride }

    deinit { pointer.deallocate() }
}
