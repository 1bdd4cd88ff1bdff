/// im2col and col2im on whole batches, equal to PyTorch's `F.unfold` and `F.fold`.
///
/// ```swift
/// let unfold = Im2Col(kernel: 3, stride: 1, padding: 1)
/// let cols = try unfold.columns(x)                  // [N, C·KH·KW, OH·OW]
/// let img  = try unfold.image(cols, shape: x.shape) // overlapping windows add up
/// ```
/// `image(columns(x))` is not `x`: each pixel comes back multiplied by the number of windows
/// that cover it. The two are adjoint: `⟨columns(x), c⟩ = ⟨x, image(c)⟩`.
///
/// - Complexity: O(N · C · KH · KW · OH · OW) each.
public struct Im2Col: Sendable, Hashable {
    public var kernel: Size2D
    public var stride: Size2D
    public var padding: Size2D
    public var dilation: Size2D

    public init(kernel: Size2D, stride: Size2D = 1, padding: Size2D = 0, dilation: Size2D = 1) {
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    /// The sliding-window geometry for an input shape `[N, C, H, W]`.
    public func geometry(inputShape: [Int]) throws -> ConvGeometry {
        try geometry(inputShape: inputShape, argument: "inputShape")
    }

    /// The geometry, with shape errors blamed on `argument`: each entry point names the image
    /// as its own parameter is spelled (`input` for ``columns(_:)``, `shape` for ``image(_:shape:)``).
    func geometry(inputShape: [Int], argument: String) throws -> ConvGeometry {
        let x = try ShapeValidation.nchw(inputShape, argument: argument)
        return try KernelError.renaming("input", to: argument) {
            try ConvGeometry(batch: x.n, channels: x.c, height: x.h, width: x.w,
                             kernel: kernel, stride: stride, padding: padding, dilation: dilation)
        }
    }

    /// The column matrices of every image: `[N, C·KH·KW, OH·OW]`.
    public func columns(_ input: Tensor) throws -> Tensor {
        let g = try geometry(inputShape: input.shape, argument: "input")
        // The whole batch's columns are one allocation: N · C·KH·KW · OH·OW floats can overflow
        // even when one image's matrix does not (a large kernel over heavy padding).
        _ = try CheckedArithmetic.product(g.batch, g.columnsPerImage, MemoryLayout<Float>.stride,
                                          argument: "input", describing: "the byte size of the batch's columns")
        let scalars = Buffers.make(count: g.batch * g.columnsPerImage) { columns in
            input.withPointer { input in
                for image in 0..<g.batch {
                    im2col(image: input + image * g.imageSize, geometry: g, columns: columns + image * g.columnsPerImage)
                }
            }
        }
        return Tensor(validatedShape: [g.batch, g.columnRows, g.outputPlaneSize], scalars: scalars)
    }

    /// col2im: sums the column matrices `[N, C·KH·KW, OH·OW]` back into images of `shape`.
    public func image(_ columns: Tensor, shape: [Int]) throws -> Tensor {
        let g = try geometry(inputShape: shape, argument: "shape")
        try ShapeValidation.require(columns.shape, equals: [g.batch, g.columnRows, g.outputPlaneSize], argument: "columns")
        let scalars = Buffers.make(count: g.batch * g.imageSize) { image in
            image.update(repeating: 0, count: g.batch * g.imageSize)
            columns.withPointer { columns in
                for index in 0..<g.batch {
                    col2im(columns: columns + index * g.columnsPerImage, geometry: g, image: image + index * g.imageSize)
                }
            }
        }
        return Tensor(validatedShape: shape, scalars: scalars)
    }

    /// im2col of one image through raw pointers, for callers managing their own buffers.
    ///
    /// `image` holds `geometry.imageSize` floats and `columns` `geometry.columnsPerImage`; the
    /// geometry was validated when it was made, the buffers are the caller's responsibility.
    public static func columns(image: UnsafePointer<Float>, geometry: ConvGeometry,
                               into columns: UnsafeMutablePointer<Float>) {
        im2col(image: image, geometry: geometry, columns: columns)
    }

    /// col2im of one image through raw pointers: adds every column entry into `image`
    /// (`geometry.imageSize` floats, accumulated into, not cleared).
    public static func accumulate(columns: UnsafePointer<Float>, geometry: ConvGeometry,
                                  into image: UnsafeMutablePointer<Float>) {
        col2im(columns: columns, geometry: geometry, image: image)
    }
}
