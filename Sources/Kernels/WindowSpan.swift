/// The output positions whose input position is inside the image, computed once per kernel
/// offset so the inner loops of im2col and col2im never test bounds (the padding is split
/// off analytically, as in PyTorch's Unfold2d.cpp).
///
/// For output position `o` the input position is `o · stride + offset`, where
/// `offset = kernelIndex · dilation − padding`. The valid `o` satisfy
/// `0 ≤ o · stride + offset < inputLength`, an interval clamped to `0..<outputLength`.
@inline(__always)
func validOutputRange(outputLength: Int, stride: Int, offset: Int, inputLength: Int) -> Range<Int> {
    let lastInput = inputLength - 1 - offset
    guard lastInput >= 0 else { return 0..<0 }
    let upper = min(outputLength, lastInput / stride + 1)
    // ceil(−offset / stride) without forming −offset + stride, which overflows for huge strides.
    let lower = offset >= 0 ? 0 : (-offset - 1) / stride + 1
    return min(lower, upper)..<upper
}
