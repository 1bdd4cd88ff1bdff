/// The gradients of a convolution-like layer's loss with respect to its three inputs, shaped
/// like them: `input` like the input, `weight` like the weight, `bias` `[channels]` (computed
/// whether or not the forward pass used a bias).
public struct ConvGradients: Sendable, Hashable {
    public let input: Tensor
    public let weight: Tensor
    public let bias: Tensor

    public init(input: Tensor, weight: Tensor, bias: Tensor) {
        self.input = input
        self.weight = weight
        self.bias = bias
    }
}
