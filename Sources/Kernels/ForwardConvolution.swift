/// A forward convolution over raw buffers with a workspace of its own size: the product-kernel
/// and direct-kernel passes the engine picks by shape, and what runs a stride-1 layer's
/// backward-data pass on its rotated kernels (``ConvolutionEngine/backwardDataRotated``).
protocol ForwardConvolution {
    /// Floats of workspace ``forward(input:weight:bias:output:workspace:)`` needs.
    var workspaceCount: Int { get }

    /// `output[n] = conv(input[n], weight) (+ bias)` for every image of the geometry.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>)
}

extension DirectConvolution: ForwardConvolution {}
extension ImplicitConvolution: ForwardConvolution {}
