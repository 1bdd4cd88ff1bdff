/// 2-D convolution (cross-correlation, like PyTorch's `Conv2d`) by im2col and SGEMM.
///
/// ```swift
/// let conv = Conv2D(stride: 2, padding: 1)
/// let y = try conv.forward(x, weight: w, bias: b)   // x [N,C,H,W], w [F,C,KH,KW], b [F]
/// let g = try conv.backward(dy, input: x, weight: w) // g.input, g.weight, g.bias
/// ```
/// Output size per axis: `floor((H + 2·padding − dilation·(K − 1) − 1) / stride) + 1`.
/// Stride, padding and dilation are validated at each call; every invalid argument throws a
/// ``KernelError`` naming it, before anything is computed.
///
/// Memory: per thread, one block's column matrix of scratch per call — `C·KH·KW` rows by a
/// band of output rows (about 1 MiB, at least 512 columns) or by a few small images side by
/// side — none for a single-image 1×1 stride-1 unpadded layer; independent of the batch size.
///
/// - Complexity: O(N · F · C · KH · KW · OH · OW) for each of forward, backward-data and
///   backward-weight.
public struct Conv2D: Sendable, Hashable {
    public var stride: Size2D
    public var padding: Size2D
    public var dilation: Size2D
    /// The matrix multiply the layer runs on (OpenBLAS unless a test or benchmark swaps it).
    public var backend: GEMMBackend

    public init(stride: Size2D = 1, padding: Size2D = 0, dilation: Size2D = 1, backend: GEMMBackend = .openBLAS) {
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.backend = backend
    }

    /// The output shape for an input and weight shape, or the error ``forward(_:weight:bias:)``
    /// would throw.
    public func outputShape(input: [Int], weight: [Int]) throws -> [Int] {
        let engine = try makeEngine(input: input, weight: weight)
        return [engine.geometry.batch, engine.filters, engine.geometry.outputHeight, engine.geometry.outputWidth]
    }

    /// `y = conv(x, weight) + bias`.
    ///
    /// - Parameters:
    ///   - input: `[N, C, H, W]`.
    ///   - weight: `[F, C, KH, KW]`.
    ///   - bias: `[F]`, or nil.
    /// - Returns: `[N, F, OH, OW]`.
    public func forward(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        let engine = try makeEngine(input: input.shape, weight: weight.shape)
        try ShapeValidation.requireBias(bias, channels: engine.filters)
        return Buffers.withWorkspace(count: engine.workspaceCount) { workspace in
            engine.filterSide(input, weight: weight, bias: bias, workspace: workspace)
        }
    }

    /// The gradients of a loss with respect to input, weight and bias, given the gradient
    /// with respect to the output.
    ///
    /// - Parameters:
    ///   - outputGradient: `[N, F, OH, OW]`, the shape ``forward(_:weight:bias:)`` returns.
    ///   - input: the forward pass's input, `[N, C, H, W]`.
    ///   - weight: the forward pass's weight, `[F, C, KH, KW]`.
    public func backward(_ outputGradient: Tensor, input: Tensor, weight: Tensor) throws -> ConvGradients {
        let engine = try makeEngine(input: input.shape, weight: weight.shape, outputGradient: outputGradient.shape)
        return Buffers.withWorkspace(count: engine.workspaceCount) { workspace in
            ConvGradients(
                input: engine.imageSide(outputGradient, weight: weight, workspace: workspace),
                weight: engine.weightGradient(filterSide: outputGradient, imageSide: input, workspace: workspace),
                bias: engine.filterSideChannelSums(outputGradient))
        }
    }

    /// Only the gradient with respect to the input (`[N, C, H, W]`), for layers whose weight
    /// is frozen or timed separately.
    public func inputGradient(_ outputGradient: Tensor, inputShape: [Int], weight: Tensor) throws -> Tensor {
        let engine = try KernelError.renaming("input", to: "inputShape") {
            try makeEngine(input: inputShape, weight: weight.shape, outputGradient: outputGradient.shape)
        }
        return Buffers.withWorkspace(count: engine.workspaceCount) { workspace in
            engine.imageSide(outputGradient, weight: weight, workspace: workspace)
        }
    }

    /// Only the gradient with respect to the weight (`[F, C, KH, KW]`), for the first layer of
    /// a network, which needs no input gradient.
    public func weightGradient(_ outputGradient: Tensor, input: Tensor, weightShape: [Int]) throws -> Tensor {
        let engine = try KernelError.renaming("weight", to: "weightShape") {
            try makeEngine(input: input.shape, weight: weightShape, outputGradient: outputGradient.shape)
        }
        return Buffers.withWorkspace(count: engine.workspaceCount) { workspace in
            engine.weightGradient(filterSide: outputGradient, imageSide: input, workspace: workspace)
        }
    }

    /// The scratch memory, in bytes, that one call with these shapes takes from the workspace
    /// pool: one block's column matrix per thread (a band of output rows of one image, or a
    /// few small images side by side; plus a staging matrix when images are grouped and a
    /// partial weight gradient when the batch is split), or one group of Winograd tiles for
    /// 3×3 stride-1 layers (and 5×5 and 7×7 ones on AVX2-only CPUs), or per thread one phase-split or channel-last image (with a band of
    /// outputs, its transposed output gradient, a partial weight gradient or, for the stride-2
    /// backward-data pass, the image's phase planes) for the AVX-512 kernels; for a 1×1
    /// stride-1 unpadded layer only what its weight gradient needs on AVX-512 CPUs (one
    /// image's transposed output gradient and a partial sum), else none. Bounded whatever the
    /// batch size. (On Linux the pool rounds buffers of 2 MiB or more up to whole 2 MiB huge
    /// pages; this count is what the call asks for, before that rounding.)
    public func workspaceByteCount(input: [Int], weight: [Int]) throws -> Int {
        try makeEngine(input: input, weight: weight).workspaceCount * MemoryLayout<Float>.stride
    }

    /// Validates the shapes and parameters, and the output gradient's shape when given.
    func makeEngine(input: [Int], weight: [Int], outputGradient: [Int]) throws -> ConvolutionEngine {
        let engine = try makeEngine(input: input, weight: weight)
        let g = engine.geometry
        try ShapeValidation.require(outputGradient, equals: [g.batch, engine.filters, g.outputHeight, g.outputWidth],
                                    argument: "outputGradient")
        return engine
    }

    /// Validates the shapes and parameters and builds the engine that runs them.
    func makeEngine(input: [Int], weight: [Int]) throws -> ConvolutionEngine {
        let x = try ShapeValidation.nchw(input, argument: "input")
        let w = try ShapeValidation.nchw(weight, argument: "weight")
        guard w.n >= 1 else {
            throw KernelError(argument: "weight", reason: "weight \(weight) has \(w.n) filters; it must have ≥ 1")
        }
        guard w.c == x.c else {
            throw KernelError(argument: "weight", reason: "weight \(weight) expects \(w.c) input channels but the input \(input) has \(x.c)")
        }
        let geometry = try ConvGeometry(batch: x.n, channels: x.c, height: x.h, width: x.w,
                                        kernel: Size2D(height: w.h, width: w.w),
                                        stride: stride, padding: padding, dilation: dilation,
                                        kernelArgument: "weight")
        try ConvolutionEngine.validateFilterSide(geometry: geometry, filters: w.n)
        return ConvolutionEngine(geometry: geometry, filters: w.n, backend: backend)
    }
}
