/// The validated sizes of a sliding-window operation over a batch of NCHW images:
/// convolution, its transpose, im2col/col2im and pooling all start from one of these.
///
/// Output size follows PyTorch: `floor((H + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`.
/// Every derived size is computed once here, overflow-checked, so the kernels that use a
/// geometry never need to check anything.
///
/// ```swift
/// let g = try ConvGeometry(batch: 8, channels: 64, height: 56, width: 56,
///                          kernel: 3, stride: 1, padding: 1, dilation: 1)
/// g.outputHeight   // 56
/// g.columnRows     // 576 = 64·3·3
/// ```
public struct ConvGeometry: Sendable, Hashable {
    public let batch: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    public let kernel: Size2D
    public let stride: Size2D
    public let padding: Size2D
    public let dilation: Size2D
    public let outputHeight: Int
    public let outputWidth: Int

    /// `channels · height · width`: the elements of one input image.
    public let imageSize: Int
    /// `height · width`: the elements of one input plane.
    public let inputPlaneSize: Int
    /// `outputHeight · outputWidth`: the columns of one image's im2col matrix.
    public let outputPlaneSize: Int
    /// `channels · kernel.height · kernel.width`: the rows of one image's im2col matrix.
    public let columnRows: Int
    /// `columnRows · outputPlaneSize`: the elements of one image's im2col matrix.
    public let columnsPerImage: Int

    /// Validates the parameters and derives the output size.
    ///
    /// - Parameter kernelArgument: the name to blame when the kernel is invalid or larger than
    ///   the padded input (`"weight"` when the kernel comes from a weight tensor).
    /// - Throws: ``KernelError`` for a negative batch, a channel/height/width below 1, a kernel,
    ///   stride or dilation below 1, a negative padding, a kernel larger than the padded
    ///   input, or any size that overflows `Int` (in elements or bytes), including
    ///   `padding + stride`.
    public init(batch: Int, channels: Int, height: Int, width: Int,
                kernel: Size2D, stride: Size2D = 1, padding: Size2D = 0, dilation: Size2D = 1,
                kernelArgument: String = "kernel") throws {
        try self.init(batch: batch, channels: channels, height: height, width: width,
                      kernel: kernel, stride: stride, padding: padding, dilation: dilation,
                      kernelArgument: kernelArgument, outputSize: nil)
    }

    /// Like the public initializer, but with the output size given instead of derived: the
    /// transposed convolution's input has this size, which may be smaller than the derived
    /// one when `outputPadding ≥ stride` (allowed while it is below the dilation).
    init(batch: Int, channels: Int, height: Int, width: Int,
         kernel: Size2D, stride: Size2D, padding: Size2D, dilation: Size2D,
         kernelArgument: String, outputSize: Size2D?) throws {
        guard batch >= 0 else {
            throw KernelError(argument: "input", reason: "batch size is \(batch); it must be ≥ 0")
        }
        for (name, value) in [("channels", channels), ("height", height), ("width", width)] where value < 1 {
            throw KernelError(argument: "input", reason: "\(name) is \(value); it must be ≥ 1")
        }
        try ConvGeometry.requirePositive(kernel, argument: kernelArgument)
        try ConvGeometry.requirePositive(stride, argument: "stride")
        try ConvGeometry.requirePositive(dilation, argument: "dilation")
        guard padding.height >= 0, padding.width >= 0 else {
            throw KernelError(argument: "padding", reason: "padding \(padding) is negative; it must be ≥ 0")
        }

        let derivedHeight = try ConvGeometry.outputLength(
            input: height, kernel: kernel.height, stride: stride.height, padding: padding.height,
            dilation: dilation.height, axis: "height", kernelArgument: kernelArgument)
        let derivedWidth = try ConvGeometry.outputLength(
            input: width, kernel: kernel.width, stride: stride.width, padding: padding.width,
            dilation: dilation.width, axis: "width", kernelArgument: kernelArgument)

        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.outputHeight = outputSize?.height ?? derivedHeight
        self.outputWidth = outputSize?.width ?? derivedWidth
        guard outputHeight >= 1, outputWidth >= 1 else {
            throw KernelError(argument: "input", reason: "output size \(outputHeight)×\(outputWidth) is empty")
        }

        // Only padding can make an output longer than its input, so an output plane too large
        // to index is the padding's fault when that happened, the input's otherwise.
        let outputArgument = outputHeight > height || outputWidth > width ? "padding" : "input"
        let floatBytes = MemoryLayout<Float>.stride
        inputPlaneSize = try CheckedArithmetic.product(height, width, argument: "input", describing: "height × width")
        imageSize = try CheckedArithmetic.product(channels, inputPlaneSize, argument: "input", describing: "channels × height × width")
        // Buffers are allocated in bytes, and Array's allocator traps when the byte count overflows.
        _ = try CheckedArithmetic.product(batch, imageSize, floatBytes, argument: "input", describing: "the batch's byte size")
        outputPlaneSize = try CheckedArithmetic.product(outputHeight, outputWidth, argument: outputArgument, describing: "output height × output width")
        columnRows = try CheckedArithmetic.product(channels, kernel.height, kernel.width, argument: kernelArgument, describing: "channels × kernel height × kernel width")
        try CheckedArithmetic.requireBLASIndex(columnRows, argument: kernelArgument, describing: "channels × kernel height × kernel width")
        try CheckedArithmetic.requireBLASIndex(outputPlaneSize, argument: outputArgument, describing: "output height × output width")
        columnsPerImage = try CheckedArithmetic.product(columnRows, outputPlaneSize, argument: "input", describing: "the im2col matrix of one image")
        _ = try CheckedArithmetic.product(columnsPerImage, floatBytes, argument: "input", describing: "the byte size of one image's im2col matrix")
    }

    /// `floor((input + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`, after checking
    /// the dilated kernel fits in the padded input.
    static func outputLength(input: Int, kernel: Int, stride: Int, padding: Int, dilation: Int,
                             axis: String, kernelArgument: String) throws -> Int {
        let paddedInput = try CheckedArithmetic.sum(input, padding, padding, argument: "padding", describing: "padded \(axis)")
        // The kernels compute the first window inside the image as ⌈padding / stride⌉ by
        // (padding + stride − 1) / stride; a stride within `padding` of Int.max would trap there.
        _ = try CheckedArithmetic.sum(padding, stride, argument: "stride", describing: "padding + stride (\(axis))")
        let span = try CheckedArithmetic.product(dilation, kernel - 1, argument: "dilation", describing: "dilated kernel \(axis)")
        let extent = try CheckedArithmetic.sum(span, 1, argument: "dilation", describing: "dilated kernel \(axis)")
        guard extent <= paddedInput else {
            throw KernelError(
                argument: kernelArgument,
                reason: "kernel \(axis) \(kernel) (dilated extent \(extent)) is larger than the padded input \(axis) \(paddedInput) (\(input) + 2 × padding \(padding))")
        }
        return (paddedInput - extent) / stride + 1
    }

    static func requirePositive(_ size: Size2D, argument: String) throws {
        guard size.height >= 1, size.width >= 1 else {
            throw KernelError(argument: argument, reason: "\(argument) \(size) must be ≥ 1 in both dimensions")
        }
    }
}

extension ConvGeometry {
    /// Multiply-adds of one image's convolution with `filters` filters: what decides whether
    /// splitting a batch's images across cores pays.
    func imageWork(filters: Int) -> Int { filters * columnsPerImage }

    /// Threads a batch's images are split across: one per core, or 1 when the work is too small.
    func imageWorkers(filters: Int) -> Int { Parallel.chunkCount(batch, workPerItem: imageWork(filters: filters)) }
}
