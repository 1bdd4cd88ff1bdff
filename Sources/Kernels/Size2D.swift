/// A height and a width: kernel sizes, strides, paddings and dilations.
///
/// An integer literal means the same value for both, like PyTorch's `stride=2`:
/// ```swift
/// let conv = Conv2D(stride: 2, padding: Size2D(height: 1, width: 0))
/// ```
/// Values are not validated here (the initializer cannot throw); each operation checks
/// the values it needs and throws a ``KernelError`` naming the parameter.
public struct Size2D: Sendable, Hashable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    /// The same value for height and width.
    public init(_ both: Int) {
        self.init(height: both, width: both)
    }

    public init(integerLiteral value: Int) {
        self.init(value)
    }

    public var description: String { height == width ? "\(height)" : "(\(height), \(width))" }
}
