/// 2-D max pooling with PyTorch's semantics (`max_pool2d(..., return_indices=True)`).
///
/// ```swift
/// let pool = MaxPool2D(kernel: 3, stride: 2, padding: 1)   // stride defaults to the kernel
/// let p  = try pool.forward(x)                              // p.output, p.indices
/// let dx = try pool.backward(dy, indices: p.indices, inputShape: x.shape)
/// ```
/// - Indices are flat positions `h · W + w` within each input plane, one per output element.
/// - The first maximum in a window wins ties; a NaN wins over any number (it propagates) and,
///   as in PyTorch's CPU kernel, the last NaN of a window is the one whose index is returned.
/// - Padding is implicit −∞ and must be at most half the kernel; every window must cover at
///   least one input pixel.
/// - Backward adds each output gradient at its index, so overlapping windows (stride <
///   kernel) that pick the same pixel accumulate.
///
/// - Complexity: O(N · C · OH · OW · KH · KW) forward, O(N · C · (H·W + OH·OW)) backward.
public struct MaxPool2D: Sendable, Hashable {
    public var kernel: Size2D
    public var stride: Size2D
    public var padding: Size2D
    public var dilation: Size2D

    /// The pooled values and, for each, the flat index within its input plane of the pixel it came from.
    public struct Result: Sendable, Hashable {
        /// `[N, C, OH, OW]`.
        public let output: Tensor
        /// One index per output element, in the output's order; each in `0..<H·W`.
        public let indices: [Int]
    }

    /// - Parameter stride: defaults to `kernel`, like PyTorch.
    public init(kernel: Size2D, stride: Size2D? = nil, padding: Size2D = 0, dilation: Size2D = 1) {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
        self.dilation = dilation
    }

    /// Pools `input` (`[N, C, H, W]`).
    public func forward(_ input: Tensor) throws -> Result {
        let g = try geometry(inputShape: input.shape, argument: "input")
        let outputCount = g.batch * g.channels * g.outputPlaneSize
        var indices = [Int](repeating: 0, count: outputCount)
        let values = Buffers.make(count: outputCount) { output in
            indices.withUnsafeMutableBufferPointer { indices in
                input.withPointer { input in
                    pool(input: input, geometry: g, output: output, indices: indices.baseAddress!)
                }
            }
        }
        return Result(output: Tensor(validatedShape: [g.batch, g.channels, g.outputHeight, g.outputWidth], scalars: values),
                      indices: indices)
    }

    /// The gradient with respect to the input: each element of `outputGradient` is added at
    /// the input position its index names.
    ///
    /// - Parameters:
    ///   - outputGradient: `[N, C, OH, OW]`, the shape of the forward output.
    ///   - indices: the forward pass's indices (one per output element, each in `0..<H·W`).
    ///   - inputShape: the forward pass's input shape.
    public func backward(_ outputGradient: Tensor, indices: [Int], inputShape: [Int]) throws -> Tensor {
        let g = try geometry(inputShape: inputShape, argument: "inputShape")
        try ShapeValidation.require(outputGradient.shape, equals: [g.batch, g.channels, g.outputHeight, g.outputWidth],
                                    argument: "outputGradient")
        guard indices.count == outputGradient.count else {
            throw KernelError(argument: "indices", reason: "expected \(outputGradient.count) indices (one per output element) but got \(indices.count)")
        }
        // Validate every index before writing anything.
        if let bad = indices.firstIndex(where: { $0 < 0 || $0 >= g.inputPlaneSize }) {
            throw KernelError(argument: "indices", reason: "index \(indices[bad]) at position \(bad) is outside its input plane 0..<\(g.inputPlaneSize)")
        }
        let planes = g.batch * g.channels
        let scalars = Buffers.make(count: planes * g.inputPlaneSize) { inputGradient in
            inputGradient.update(repeating: 0, count: planes * g.inputPlaneSize)
            guard planes > 0 else { return }
            outputGradient.withPointer { outputGradient in
                indices.withUnsafeBufferPointer { indices in
                    let indices = indices.baseAddress!
                    Parallel.forEach(planes, workPerItem: g.outputPlaneSize) { planeRange in
                        for plane in planeRange {
                            let destination = inputGradient + plane * g.inputPlaneSize
                            let base = plane * g.outputPlaneSize
                            for position in 0..<g.outputPlaneSize {
                                destination[indices[base + position]] += outputGradient[base + position]
                            }
                        }
                    }
                }
            }
        }
        return Tensor(validatedShape: inputShape, scalars: scalars)
    }

    /// Validates parameters against an input shape.
    func geometry(inputShape: [Int], argument: String) throws -> ConvGeometry {
        let x = try ShapeValidation.nchw(inputShape, argument: argument)
        try ConvGeometry.requirePositive(kernel, argument: "kernel")
        guard padding.height >= 0, padding.width >= 0,
              padding.height <= kernel.height / 2, padding.width <= kernel.width / 2 else {
            throw KernelError(argument: "padding", reason: "padding \(padding) must be ≥ 0 and at most half the kernel \(kernel)")
        }
        let g: ConvGeometry
        do {
            g = try ConvGeometry(batch: x.n, channels: x.c, height: x.h, width: x.w,
                                 kernel: kernel, stride: stride, padding: padding, dilation: dilation)
        } catch let error as KernelError where error.argument == "input" {
            // ConvGeometry calls the image "input"; backward receives it as `inputShape`.
            throw KernelError(argument: argument, reason: error.reason)
        }
        if let row = firstEmptyWindow(outputLength: g.outputHeight, inputLength: g.height, kernel: kernel.height,
                                      stride: stride.height, padding: padding.height, dilation: dilation.height) {
            throw KernelError(argument: "dilation", reason: "window at output row \(row) covers only padding (dilation \(dilation), input height \(g.height))")
        }
        if let column = firstEmptyWindow(outputLength: g.outputWidth, inputLength: g.width, kernel: kernel.width,
                                         stride: stride.width, padding: padding.width, dilation: dilation.width) {
            throw KernelError(argument: "dilation", reason: "window at output column \(column) covers only padding (dilation \(dilation), input width \(g.width))")
        }
        return g
    }

    /// The first output position whose dilated window misses every input pixel, if any: such a
    /// window has no maximum (PyTorch returns an index outside the plane there).
    private func firstEmptyWindow(outputLength: Int, inputLength: Int, kernel: Int, stride: Int, padding: Int, dilation: Int) -> Int? {
        (0..<outputLength).first { output in
            let start = output * stride - padding
            return !(0..<kernel).contains { tap in (0..<inputLength).contains(start + tap * dilation) }
        }
    }

    /// The forward kernel: one plane per task, bounds of each window computed once.
    private func pool(input: UnsafePointer<Float>, geometry g: ConvGeometry,
                      output: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int>) {
        let planes = g.batch * g.channels
        Parallel.forEach(planes, workPerItem: g.outputPlaneSize * g.kernel.height * g.kernel.width) { planeRange in
            for plane in planeRange {
                let source = input + plane * g.inputPlaneSize
                let base = plane * g.outputPlaneSize
                for outputRow in 0..<g.outputHeight {
                    let rows = windowTaps(start: outputRow * g.stride.height - g.padding.height, kernel: g.kernel.height,
                                          dilation: g.dilation.height, inputLength: g.height)
                    for outputColumn in 0..<g.outputWidth {
                        let columns = windowTaps(start: outputColumn * g.stride.width - g.padding.width, kernel: g.kernel.width,
                                                 dilation: g.dilation.width, inputLength: g.width)
                        var maximum = -Float.infinity
                        var maximumIndex = rows.first * g.width + columns.first
                        var row = rows.first
                        while row < rows.end {
                            var column = columns.first
                            while column < columns.end {
                                let index = row * g.width + column
                                let value = source[index]
                                // `value > maximum` keeps the first of equal maxima; a NaN always takes over.
                                if value > maximum || value.isNaN {
                                    maximum = value
                                    maximumIndex = index
                                }
                                // Stop before stepping: a 1-tap window may have a dilation near
                                // Int.max, and position + dilation would trap.
                                guard columns.end - column > g.dilation.width else { break }
                                column += g.dilation.width
                            }
                            guard rows.end - row > g.dilation.height else { break }
                            row += g.dilation.height
                        }
                        output[base + outputRow * g.outputWidth + outputColumn] = maximum
                        indices[base + outputRow * g.outputWidth + outputColumn] = maximumIndex
                    }
                }
            }
        }
    }

    /// The first in-bounds tap position of a window and the bound past its last one (steps of `dilation`).
    @inline(__always)
    private func windowTaps(start: Int, kernel: Int, dilation: Int, inputLength: Int) -> (first: Int, end: Int) {
        var first = start
        if first < 0 { first += ((-first + dilation - 1) / dilation) * dilation }
        let end = min(start + (kernel - 1) * dilation + 1, inputLength)
        return (first, end)
    }
}
