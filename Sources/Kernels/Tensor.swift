/// A dense, contiguous, row-major array of `Float` with a shape; images are NCHW.
///
/// ```swift
/// let x = try Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4])
/// x.shape    // [1, 1, 2, 2]
/// x.scalars  // [1, 2, 3, 4]
/// ```
/// The initializer checks that every dimension is non-negative, that their product does
/// not overflow `Int`, and that it equals `scalars.count`, so a `Tensor` is always
/// internally consistent. Creating one is O(1) beyond the array copy-on-write.
public struct Tensor: Sendable, Hashable {
    /// The size of each dimension, outermost first.
    public let shape: [Int]
    /// The elements in row-major order; `scalars.count` is the product of `shape`.
    public let scalars: [Float]

    /// Throws ``KernelError`` (argument `"shape"` or `"scalars"`) when the shape is invalid
    /// or does not describe exactly `scalars.count` elements.
    public init(shape: [Int], scalars: [Float]) throws {
        let count = try Tensor.elementCount(of: shape, argument: "shape")
        guard count == scalars.count else {
            throw KernelError(
                argument: "scalars",
                reason: "shape \(shape) holds \(count) elements but \(scalars.count) scalars were given")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of the given shape filled with `value` (zero by default).
    public init(shape: [Int], repeating value: Float = 0) throws {
        let count = try Tensor.elementCount(of: shape, argument: "shape")
        self.shape = shape
        self.scalars = [Float](repeating: value, count: count)
    }

    /// Builds a tensor whose shape the caller has already validated.
    init(validatedShape shape: [Int], scalars: [Float]) {
        self.shape = shape
        self.scalars = scalars
    }

    /// The rank (number of dimensions).
    public var rank: Int { shape.count }

    /// The number of elements, the product of `shape`.
    public var count: Int { scalars.count }

    /// The product of `shape`, or a ``KernelError`` naming `argument` when a dimension is
    /// negative or the product overflows `Int` (counted in elements or in bytes).
    static func elementCount(of shape: [Int], argument: String) throws -> Int {
        if let axis = shape.firstIndex(where: { $0 < 0 }) {
            throw KernelError(argument: argument, reason: "dimension \(axis) of \(shape) is negative")
        }
        // A zero anywhere makes the true product 0, so [Int.max, 2, 0] is as valid as [0, Int.max, 2].
        if shape.contains(0) { return 0 }
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw KernelError(argument: argument, reason: "the element count of \(shape) overflows Int")
            }
            count = product
        }
        // The storage is allocated in bytes; an element count that fits Int can still overflow there,
        // and Array's allocator traps on that instead of throwing.
        _ = try CheckedArithmetic.product(count, MemoryLayout<Float>.stride, argument: argument,
                                          describing: "the byte size of \(shape)")
        return count
    }
}
