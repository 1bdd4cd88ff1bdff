/// Shape checks shared by every layer, each throwing a ``KernelError`` that names the argument.
enum ShapeValidation {
    /// The four dimensions of an NCHW tensor, or an error if its rank is not 4.
    static func nchw(_ shape: [Int], argument: String) throws -> (n: Int, c: Int, h: Int, w: Int) {
        guard shape.count == 4 else {
            throw KernelError(argument: argument, reason: "expected rank 4 (N, C, H, W) but the shape is \(shape)")
        }
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// Throws unless `shape` equals `expected`.
    static func require(_ shape: [Int], equals expected: [Int], argument: String) throws {
        guard shape == expected else {
            throw KernelError(argument: argument, reason: "expected shape \(expected) but got \(shape)")
        }
    }

    /// Validates an optional bias of shape `[channels]`.
    static func requireBias(_ bias: Tensor?, channels: Int) throws {
        if let bias { try require(bias.shape, equals: [channels], argument: "bias") }
    }
}

/// Scratch and result buffers for the layers, so no layer repeats pointer plumbing.
enum Buffers {
    /// A `[Float]` of `count` elements written by `body`, which must initialize all of them.
    /// Large ones are advised onto huge pages first (see ``HugePageAdvice``).
    static func make(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> [Float] {
        guard count > 0 else { return [] }
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            HugePageAdvice.preferHugePages(buffer.baseAddress!, byteCount: count * MemoryLayout<Float>.stride)
            try body(buffer.baseAddress!)
            initialized = count
        }
    }

    /// Runs `body` with `count` floats of uninitialized scratch memory (nil when `count` is 0),
    /// taken from and returned to the shared ``WorkspacePool``.
    static func withWorkspace<Result>(count: Int, _ body: (UnsafeMutablePointer<Float>?) throws -> Result) rethrows -> Result {
        try WorkspacePool.shared.withWorkspace(count: count, body)
    }
}

extension Tensor {
    /// Runs `body` with a pointer to the scalars. Only called on non-empty tensors.
    @inline(__always)
    func withPointer<Result>(_ body: (UnsafePointer<Float>) throws -> Result) rethrows -> Result {
        try scalars.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

extension Optional where Wrapped == Tensor {
    /// Runs `body` with a pointer to the scalars, or nil when there is no tensor.
    @inline(__always)
    func withPointer<Result>(_ body: (UnsafePointer<Float>?) throws -> Result) rethrows -> Result {
        guard let tensor = self else { return try body(nil) }
        return try tensor.withPointer { try body($0) }
    }
}
