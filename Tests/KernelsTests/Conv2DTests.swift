import Testing
@testable import Kernels

@Suite struct Conv2DTests {
    static let tolerance = 2e-4

    @Test(arguments: [GEMMBackend.openBLAS, .swiftNaive, .swiftBlocked])
    func forwardMatchesDirectConvolution(backend: GEMMBackend) throws {
        var generator = SeededGenerator(seed: 21)
        for trial in 0..<50 {
            let geometry = RandomGeometry.draw(&generator)
            let x = Tensor.random(geometry.inputShape, using: &generator)
            let w = Tensor.random(geometry.weightShape, using: &generator)
            let b = trial.isMultiple(of: 2) ? Tensor.random([geometry.filters], using: &generator) : nil
            let conv = Conv2D(stride: geometry.params.stride, padding: geometry.params.padding,
                              dilation: geometry.params.dilation, backend: backend)
            let y = try conv.forward(x, weight: w, bias: b)
            let reference = Reference.conv2d(x, w, b, geometry.params)
            #expect(y.shape == reference.shape, "\(geometry)")
            #expect(relativeError(y.scalars, reference.values) <= Self.tolerance, "\(geometry)")
        }
    }

    @Test func gradientsMatchFiniteDifferences() throws {
        // Loss = Σ y ⊙ r for a random r, so dL/dy = r.
        var generator = SeededGenerator(seed: 22)
        for _ in 0..<25 {
            let geometry = RandomGeometry.draw(&generator)
            let x = Tensor.random(geometry.inputShape, using: &generator)
            let w = Tensor.random(geometry.weightShape, using: &generator)
            let b = Tensor.random([geometry.filters], using: &generator)
            let conv = Conv2D(stride: geometry.params.stride, padding: geometry.params.padding, dilation: geometry.params.dilation)
            let r = Tensor.random(try conv.outputShape(input: x.shape, weight: w.shape), using: &generator)
            let g = try conv.backward(r, input: x, weight: w)
            #expect(g.input.shape == x.shape && g.weight.shape == w.shape && g.bias.shape == [geometry.filters])
            Reference.checkGradients(g, x: x, w: w, b: b, using: &generator, context: "\(geometry)") { xs, ws, bs in
                let y = Reference.conv2d(xs, x.shape, ws, w.shape, bs, geometry.params)
                return zip(y.values, r.scalars).reduce(0) { $0 + $1.0 * Double($1.1) }
            }
        }
    }

    @Test(arguments: [(Size2D(2), Size2D(1), 3, Size2D(1)), (Size2D(1), Size2D(0), 1, Size2D(1)), (Size2D(1), Size2D(2), 3, Size2D(2))])
    func batchesSplitAcrossThreadsMatchTheReference(stride: Size2D, padding: Size2D, kernel: Int, dilation: Size2D) throws {
        // Large enough that the im2col/pointwise passes split the batch across threads (each with
        // single-threaded OpenBLAS and its own workspace slice, weight gradients summed from
        // per-thread partials); an odd batch gives the threads unequal runs.
        var generator = SeededGenerator(seed: 25)
        let x = Tensor.random([5, 6, 20, 18], using: &generator)
        let w = Tensor.random([12, 6, kernel, kernel], using: &generator)
        let b = Tensor.random([12], using: &generator)
        let conv = Conv2D(stride: stride, padding: padding, dilation: dilation)
        let engine = try conv.makeEngine(input: x.shape, weight: w.shape)
        #expect(engine.imageWorkers == min(Parallel.coreCount, 5))
        let params = Reference.Params(stride: stride, padding: padding, dilation: dilation)
        let y = try conv.forward(x, weight: w, bias: b)
        #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, params).values) <= Self.tolerance)
        let dy = Tensor.random(y.shape, using: &generator)
        let g = try conv.backward(dy, input: x, weight: w)
        // The naive backend runs every pass image by image on one thread: the same sums.
        let serial = try Conv2D(stride: stride, padding: padding, dilation: dilation, backend: .swiftNaive).backward(dy, input: x, weight: w)
        #expect(relativeError(g.input.scalars, serial.input.scalars) <= Self.tolerance)
        #expect(relativeError(g.weight.scalars, serial.weight.scalars) <= Self.tolerance)
        #expect(g.bias == serial.bias)
    }

    @Test func splitGradientCallsEqualTheCombinedBackward() throws {
        var generator = SeededGenerator(seed: 23)
        let conv = Conv2D(stride: 2, padding: 1)
        let x = Tensor.random([2, 3, 9, 7], using: &generator)
        let w = Tensor.random([4, 3, 3, 3], using: &generator)
        let dy = Tensor.random(try conv.outputShape(input: x.shape, weight: w.shape), using: &generator)
        let g = try conv.backward(dy, input: x, weight: w)
        #expect(try conv.inputGradient(dy, inputShape: x.shape, weight: w) == g.input)
        #expect(try conv.weightGradient(dy, input: x, weightShape: w.shape) == g.weight)
    }

    @Test func pointwiseConvolutionIsAMatrixProductPerPixel() throws {
        // 1×1 stride-1 unpadded takes the no-im2col path: check it against the reference too,
        // with a batch > 1 so per-image offsets are exercised.
        var generator = SeededGenerator(seed: 24)
        let x = Tensor.random([3, 5, 4, 6], using: &generator)
        let w = Tensor.random([7, 5, 1, 1], using: &generator)
        let b = Tensor.random([7], using: &generator)
        let conv = Conv2D()
        // Wide planes are read in place: no scratch at all, except on AVX-512 CPUs for the
        // weight gradient's transposed output gradient (1600 × 7) and its partial sum (5 × 7).
        let scratch = ProductKernel.preferred == nil ? 0 : (1600 * 7 + 5 * 7) * MemoryLayout<Float>.stride
        #expect(try conv.workspaceByteCount(input: [1, 5, 40, 40], weight: w.shape) == scratch)
        let y = try conv.forward(x, weight: w, bias: b)
        #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, .init()).values) <= Self.tolerance)
        let dy = Tensor.random(y.shape, using: &generator)
        let g = try conv.backward(dy, input: x, weight: w)
        // dX of a 1×1 convolution is Wᵀ·dY per pixel: the transposed convolution with the same weight.
        let expected = Reference.convTranspose2d(dy, w, nil, .init(), outputPadding: 0)
        #expect(relativeError(g.input.scalars, expected.values) <= Self.tolerance)
        #expect(relativeError(g.weight.scalars, Reference.conv2dWeightGradient(dy, x, weightShape: w.shape, .init())) <= Self.tolerance)
    }

    /// The pointwise weight gradient by the product kernel on AVX-512 CPUs (``PointwiseWeightGradient``):
    /// one image (channels split across cores), several (per-thread partial sums), filter counts
    /// that end mid-vector and span several 64-column blocks, and layers it does not take (planes
    /// under 28×28, a gradient, then a partial sum too large), which still run it here directly.
    @Test(arguments: [([1, 13, 30, 30], 70), ([3, 16, 28, 28], 20), ([6, 9, 20, 20], 5), ([5, 64, 14, 14], 130),
                      ([2, 8, 70, 70], 64), ([2, 520, 3, 3], 520)])
    func pointwiseWeightGradientMatchesTheReference(input: [Int], filters: Int) throws {
        var generator = SeededGenerator(seed: 25)
        let conv = Conv2D()
        let x = Tensor.random(input, using: &generator)
        let weightShape = [filters, input[1], 1, 1]
        let engine = try conv.makeEngine(input: input, weight: weightShape)
        let fits = input[2] * input[3] * filters <= PointwiseWeightGradient.maximumGradientFloats
            && input[1] * filters <= PointwiseWeightGradient.maximumGradientFloats
            && input[2] * input[3] >= PointwiseWeightGradient.minimumPositions
        #expect((engine.pointwiseWeightGradient != nil) == (ProductKernel.preferred != nil && fits))
        let dy = Tensor.random([input[0], filters, input[2], input[3]], using: &generator)
        let dw = try conv.weightGradient(dy, input: x, weightShape: weightShape)
        let expected = Reference.conv2dWeightGradient(dy, x, weightShape: weightShape, .init())
        #expect(relativeError(dw.scalars, expected) <= Self.tolerance)
        #expect(try conv.weightGradient(dy, input: x, weightShape: weightShape).scalars == dw.scalars)
        // The product path itself, whether or not the engine takes it for this layer.
        guard let product = ProductKernel.preferred else { return }
        let pointwise = PointwiseWeightGradient(geometry: engine.geometry, filters: filters, product: product)
        var direct = [Float](repeating: .nan, count: dw.scalars.count)
        var workspace = [Float](repeating: .nan, count: pointwise.workspaceCount)
        x.withPointer { x in
            dy.withPointer { dy in pointwise.run(input: x, outputGradient: dy, weightGradient: &direct, workspace: &workspace) }
        }
        #expect(relativeError(direct, expected) <= Self.tolerance)
    }

    /// A weight gradient through GEMM whose images are too small (7×7 outputs) for each thread
    /// to keep its own partial sum: every GEMM split across cores instead, into the gradient itself.
    @Test func smallImagesWeightGradientSplitsEachGEMM() throws {
        var generator = SeededGenerator(seed: 27)
        let conv = Conv2D(stride: 2, padding: 1)
        let (input, weightShape) = ([6, 40, 14, 14], [24, 40, 3, 3])
        let engine = try conv.makeEngine(input: input, weight: weightShape)
        #expect(!engine.weightGradientSplitsBatch && !engine.usesWinograd && engine.forwardDirect == nil)
        #expect(engine.forwardImplicit?.weightGradientPays != true)
        let x = Tensor.random(input, using: &generator)
        let dy = Tensor.random(try conv.outputShape(input: input, weight: weightShape), using: &generator)
        let dw = try conv.weightGradient(dy, input: x, weightShape: weightShape)
        let expected = Reference.conv2dWeightGradient(dy, x, weightShape: weightShape, .init(stride: Size2D(2), padding: Size2D(1)))
        #expect(relativeError(dw.scalars, expected) <= Self.tolerance)
        #expect(try conv.weightGradient(dy, input: x, weightShape: weightShape).scalars == dw.scalars)
    }

    /// Layers whose im2col / pointwise passes go through GEMM in bands of output rows (wide
    /// planes) or in groups of whole images (narrow planes), with odd remainders.
    static let blockedLayers: [(input: [Int], filters: Int, kernel: Int, stride: Int, padding: Int, bands: Bool)] = [
        ([1, 4, 83, 80], 3, 5, 1, 2, true),     // 5×5: several bands, the last one short
        ([2, 32, 121, 97], 5, 3, 2, 1, true),   // stride 2: bands per image, one image per thread
        ([7, 6, 9, 11], 5, 3, 1, 1, false),     // groups of several images, an odd batch
        ([5, 9, 8, 7], 6, 3, 2, 1, false),      // stride 2 groups
        ([7, 6, 5, 6], 4, 1, 1, 0, false),      // pointwise groups are copied side by side
    ]

    @Test(arguments: 0..<5)
    func blocksOfRowsOrImagesMatchTheReference(layer index: Int) throws {
        let layer = Self.blockedLayers[index]
        var generator = SeededGenerator(seed: 26 + UInt64(index))
        let x = Tensor.random(layer.input, using: &generator)
        let w = Tensor.random([layer.filters, layer.input[1], layer.kernel, layer.kernel], using: &generator)
        let b = Tensor.random([layer.filters], using: &generator)
        let conv = Conv2D(stride: Size2D(layer.stride), padding: Size2D(layer.padding))
        let blocking = try conv.makeEngine(input: x.shape, weight: w.shape).blocking
        if layer.bands {
            #expect(blocking.rowsPerBand < blocking.outputHeight && blocking.outputHeight % blocking.rowsPerBand != 0)
        } else {
            #expect(blocking.imagesPerGroup > 1)
        }
        let params = Reference.Params(stride: Size2D(layer.stride), padding: Size2D(layer.padding))
        for backend in [GEMMBackend.openBLAS, .swiftNaive] {
            let conv = Conv2D(stride: Size2D(layer.stride), padding: Size2D(layer.padding), backend: backend)
            let y = try conv.forward(x, weight: w, bias: b)
            #expect(relativeError(y.scalars, Reference.conv2d(x, w, b, params).values) <= Self.tolerance)
            let dy = Tensor.random(y.shape, using: &generator)
            let g = try conv.backward(dy, input: x, weight: w)
            let outputPadding = Size2D(height: x.shape[2] - Reference.transposedLength(y.shape[2], layer.kernel, layer.stride, layer.padding, 1, outputPadding: 0),
                                       width: x.shape[3] - Reference.transposedLength(y.shape[3], layer.kernel, layer.stride, layer.padding, 1, outputPadding: 0))
            let expectedInput = Reference.convTranspose2d(dy, w, nil, params, outputPadding: outputPadding)
            #expect(relativeError(g.input.scalars, expectedInput.values) <= Self.tolerance)
            #expect(relativeError(g.weight.scalars, Reference.conv2dWeightGradient(dy, x, weightShape: w.shape, params)) <= Self.tolerance)
        }
    }

    @Test func emptyBatchGivesEmptyOutputsAndZeroParameterGradients() throws {
        let conv = Conv2D(padding: 1)
        let x = try Tensor(shape: [0, 2, 5, 5], scalars: [])
        let w = try Tensor(shape: [3, 2, 3, 3], repeating: 1)
        let y = try conv.forward(x, weight: w, bias: try Tensor(shape: [3], repeating: 1))
        #expect(y.shape == [0, 3, 5, 5] && y.scalars.isEmpty)
        let g = try conv.backward(y, input: x, weight: w)
        #expect(g.input.shape == [0, 2, 5, 5])
        #expect(g.weight.scalars == [Float](repeating: 0, count: 54))
        #expect(g.bias.scalars == [0, 0, 0])
    }

    /// Issue #4: doubling the batch must not double a call's scratch memory. Every path (bands,
    /// image groups, split batches, Winograd groups) must level off: from batch 8 on, each
    /// doubling adds less than the workspace already held, and from 32 on (64 for 4×4 outputs,
    /// grouped 32 images per thread so GEMM gets 512 columns) it adds nothing
    /// (Winograd groups of 2048 tiles alone would keep resnet-c4 growing up to 37 images).
    @Test(arguments: [
        ([64, 64, 32, 32], [64, 64, 3, 3], 1, 1, 32),     // cifar-64: Winograd, 2048-tile groups
        ([8, 64, 56, 56], [64, 64, 3, 3], 1, 1, 32),      // resnet-c2: Winograd, 3 images a group
        ([8, 256, 14, 14], [256, 256, 3, 3], 1, 1, 32),   // resnet-c4: Winograd capped by bytes
        ([8, 64, 56, 56], [128, 64, 3, 3], 2, 1, 32),     // resnet-c3s2: im2col per image
        ([8, 256, 56, 56], [64, 256, 1, 1], 1, 0, 32),    // resnet-1x1: pointwise
        ([8, 512, 7, 7], [512, 512, 3, 3], 1, 1, 32),     // tiny planes: Winograd capped by bytes
        ([8, 64, 7, 7], [64, 64, 3, 3], 2, 1, 64),        // 4×4 outputs: im2col groups of 32 images per thread
        ([8, 3, 224, 224], [64, 3, 7, 7], 2, 3, 32),      // 7×7 stem
        ([100, 1, 28, 28], [30, 1, 5, 5], 1, 0, 32),      // dlfs-simpleconv
    ])
    func workspaceLevelsOffAsTheBatchGrows(input: [Int], weight: [Int], stride: Int, padding: Int, flatFrom: Int) throws {
        let conv = Conv2D(stride: Size2D(stride), padding: Size2D(padding))
        func workspace(batch: Int) throws -> Int {
            try conv.workspaceByteCount(input: [batch] + input.dropFirst(), weight: weight)
        }
        for batch in [8, 16, 32, 64] {
            let (single, double) = (try workspace(batch: batch), try workspace(batch: 2 * batch))
            #expect(double < 2 * single || single == 0, "batch \(batch) → \(2 * batch): \(single) → \(double) bytes")
        }
        #expect(try workspace(batch: 2 * flatFrom) == workspace(batch: flatFrom))
        #expect(try workspace(batch: 1024) == workspace(batch: flatFrom))
    }
}
