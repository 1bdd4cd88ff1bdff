/// 2-D transposed convolution (PyTorch's `ConvTranspose2d`): the adjoint of ``Conv2D``'s
/// input mapping, computed as `col2im(weightᵀ · x)` — each input pixel scatters a weighted
/// kernel-sized patch into the output, and overlapping patches add up.
///
/// ```swift
/// let up = ConvTranspose2D(stride: 2, padding: 1, outputPadding: 1)
/// let z  = try up.forward(x, weight: wt, bias: b)     // x [N,Cin,H,W], wt [Cin,Cout,KH,KW], b [Cout]
/// let g  = try up.backward(dz, input: x, weight: wt)  // same gradients type as Conv2D
/// ```
/// Output size per axis: `(H − 1)·stride − 2·padding + dilation·(K − 1) + outputPadding + 1`.
/// `outputPadding` must be smaller than the stride or the dilation (as in PyTorch).
///
/// Memory: per thread, one block of an output image's column matrix (see ``Conv2D``) of
/// scratch per call, independent of the batch.
///
/// - Complexity: O(N · Cin · Cout · KH · KW · H · W) for each pass.
public struct ConvTranspose2D: Sendable, Hashable {
    public var stride: Size2D
    public var padding: Size2D
    public var outputPadding: Size2D
    public var dilation: Size2D
    /// The matrix multiply the layer runs on (OpenBLAS unless a test or benchmark swaps it).
    public var backend: GEMMBackend

    public init(stride: Size2D = 1, padding: Size2D = 0, outputPadding: Size2D = 0, dilation: Size2D = 1,
                backend: GEMMBackend = .openBLAS) {
        self.stride = stride
        self.padding = padding
        self.outputPadding = outputPadding
        self.dilation = dilation
        self.backend = backend
    }

    /// The output shape for an input and weight shape, or the error ``forward(_:weight:bias:)``
    /// would throw.
    public func outputShape(input: [Int], weight: [Int]) throws -> [Int] {
        let g = try makeEngine(input: input, weight: weight).geometry
        return [g.batch, g.channels, g.height, g.width]
    }

    /// - Parameters:
    ///   - input: `[N, Cin, H, W]`.
    ///   - weight: `[Cin, Cout, KH, KW]`, PyTorch's layout for transposed convolution.
    ///   - bias: `[Cout]`, or nil.
    /// - Returns: `[N, Cout, HO, WO]`.
    public func forward(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        let engine = try makeEngine(input: input.shape, weight: weight.shape)
        try ShapeValidation.requireBias(bias, channels: engine.geometry.channels)
        // The transposed convolution's forward pass is the convolution's backward-data pass.
        return Buffers.withWorkspace(count: engine.workspaceCount) { workspace in
            engine.imageSide(input, weight: weight, channelBias: bias, workspace: workspace)
        }
    }

    /// The gradients with respect to input, weight and bias, given the gradient with respect
    /// to the output (`[N, Cout, HO, WO]`, the shape ``forward(_:weight:bias:)`` returns).
    public func backward(_ outputGradient: Tensor, input: Tensor, weight: Tensor) throws -> ConvGradients {
        let engine = try makeEngine(input: input.shape, weight: weight.shape)
        let g = engine.geometry
        try ShapeValidation.require(outputGradient.shape, equals: [g.batch, g.channels, g.height, g.width],
                                    argument: "outputGradient")
        // Roles swap against Conv2D: the output gradient is the image side, the input the filter side.
        return Buffers.withWorkspace(count: engine.workspaceCount) { workspace in
            ConvGradients(
                input: engine.filterSide(outputGradient, weight: weight, bias: nil, workspace: workspace),
                weight: engine.weightGradient(filterSide: input, imageSide: outputGradient, workspace: workspace),
                bias: engine.imageSideChannelSums(outputGradient))
        }
    }

    /// Validates shapes and parameters; the engine's image side is this layer's output.
    func makeEngine(input: [Int], weight: [Int]) throws -> ConvolutionEngine {
        let x = try ShapeValidation.nchw(input, argument: "input")
        let w = try ShapeValidation.nchw(weight, argument: "weight")
        guard w.n == x.c else {
            throw KernelError(argument: "weight", reason: "weight \(weight) expects \(w.n) input channels but the input \(input) has \(x.c)")
        }
        guard w.c >= 1 else {
            throw KernelError(argument: "weight", reason: "weight \(weight) has \(w.c) output channels; it must have ≥ 1")
        }
        guard x.n >= 0, x.c >= 1, x.h >= 1, x.w >= 1 else {
            throw KernelError(argument: "input", reason: "input \(input) must have batch ≥ 0 and channels, height and width ≥ 1")
        }
        let kernel = Size2D(height: w.h, width: w.w)
        try ConvGeometry.requirePositive(kernel, argument: "weight")
        try ConvGeometry.requirePositive(stride, argument: "stride")
        try ConvGeometry.requirePositive(dilation, argument: "dilation")
        guard padding.height >= 0, padding.width >= 0 else {
            throw KernelError(argument: "padding", reason: "padding \(padding) is negative; it must be ≥ 0")
        }
        let outputHeight = try transposedLength(input: x.h, kernel: w.h, stride: stride.height, padding: padding.height,
                                                outputPadding: outputPadding.height, dilation: dilation.height, axis: "height")
        let outputWidth = try transposedLength(input: x.w, kernel: w.w, stride: stride.width, padding: padding.width,
                                               outputPadding: outputPadding.width, dilation: dilation.width, axis: "width")
        let geometry = try ConvGeometry(batch: x.n, channels: w.c, height: outputHeight, width: outputWidth,
                                        kernel: kernel, stride: stride, padding: padding, dilation: dilation,
                                        kernelArgument: "weight", outputSize: Size2D(height: x.h, width: x.w))
        try ConvolutionEngine.validateFilterSide(geometry: geometry, filters: w.n)
        return ConvolutionEngine(geometry: geometry, filters: w.n, backend: backend)
    }

    /// `(input − 1)·stride − 2·padding + dilation·(kernel − 1) + outputPadding + 1`, checked.
    private func transposedLength(input: Int, kernel: Int, stride: Int, padding: Int, outputPadding: Int,
                                  dilation: Int, axis: String) throws -> Int {
        guard outputPadding >= 0, outputPadding < stride || outputPadding < dilation else {
            throw KernelError(argument: "outputPadding",
                              reason: "output padding \(axis) \(outputPadding) must be ≥ 0 and smaller than the stride \(stride) or the dilation \(dilation)")
        }
        let strided = try CheckedArithmetic.product(input - 1, stride, argument: "stride", describing: "(input \(axis) − 1) × stride")
        let span = try CheckedArithmetic.product(dilation, kernel - 1, argument: "dilation", describing: "dilated kernel \(axis)")
        let grown = try CheckedArithmetic.sum(strided, span, outputPadding, 1, argument: "input", describing: "output \(axis)")
        let (length, overflow) = (grown - padding).subtractingReportingOverflow(padding)  // grown ≥ 1, padding ≥ 0
        guard !overflow, length >= 1 else {
            throw KernelError(argument: "padding",
                              reason: "output \(axis) would be below 1 (input \(input), kernel \(kernel), stride \(stride), padding \(padding), dilation \(dilation), output padding \(outputPadding))")
        }
        return length
    }
}
