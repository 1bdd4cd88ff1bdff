/// The three GEMM-based passes of a convolution over raw buffers, shared by ``Conv2D`` (which
/// runs them as forward / backward) and ``ConvTranspose2D`` (whose forward is the backward-data
/// pass and whose backward-data is the forward pass).
///
/// `geometry` describes the image side (`batch × channels × height × width`), `filters` the
/// other side (`batch × filters × outputHeight × outputWidth`), and the weight is
/// `filters × geometry.columnRows`, row-major. Buffers are assumed valid: callers validate.
///
/// Three algorithms, chosen by shape:
/// - 3×3 stride-1 with enough channels: Winograd F(2×2, 3×3) for all passes (``WinogradF2x3``).
/// - 1×1 stride-1 unpadded: the image is its own column matrix; each pass is one GEMM per image.
/// - anything else: im2col + GEMM, one image at a time. (Putting several images' column
///   matrices side by side in one wider GEMM was measured slower on every layer tried — the
///   staging copies and the larger, cache-cold column matrix cost more than the wider GEMM
///   gains — so it is not done.)
///
/// Memory is bounded whatever the batch: one image (or one group of Winograd tiles) at a time
/// goes through the workspace (``workspaceCount``).
struct ConvolutionEngine {
    let geometry: ConvGeometry
    let filters: Int
    let backend: GEMMBackend
    /// 1×1, stride-1, unpadded: the image already is its column matrix, so im2col and col2im
    /// are skipped and each pass is a plain GEMM.
    var isPointwise: Bool {
        geometry.kernel == 1 && geometry.stride == 1 && geometry.padding == 0
    }

    /// 3×3 stride-1 layers with enough channels run all three passes through Winograd
    /// F(2×2, 3×3) (see ``WinogradF2x3``).
    var usesWinograd: Bool { WinogradF2x3.applies(to: geometry, filters: filters) }

    /// The forward pass as a Winograd convolution: image side in, filter side out.
    var forwardWinograd: WinogradF2x3 {
        let g = geometry
        return WinogradF2x3(batch: g.batch, inputChannels: g.channels, height: g.height, width: g.width,
                            outputChannels: filters, padding: g.padding, backend: backend)
    }

    /// The backward-data pass as a Winograd convolution: filter side in, image side out, with
    /// padding `2 − p` (a "full" correlation with the rotated kernel).
    var backwardDataWinograd: WinogradF2x3 {
        let g = geometry
        return WinogradF2x3(batch: g.batch, inputChannels: filters, height: g.outputHeight, width: g.outputWidth,
                            outputChannels: g.channels,
                            padding: Size2D(height: 2 - g.padding.height, width: 2 - g.padding.width), backend: backend)
    }

    /// Floats of scratch space the passes need (the largest of them, so one buffer serves a
    /// whole backward call).
    var workspaceCount: Int {
        if usesWinograd { return max(forwardWinograd.workspaceCount, backwardDataWinograd.workspaceCount) }
        return imageWorkers * sliceCount
    }

    /// Threads the im2col and pointwise passes split the batch across. With OpenBLAS and more
    /// than one image, each thread takes a contiguous run of images and runs single-threaded
    /// OpenBLAS and serial im2col/col2im on its own workspace slice: measured faster than
    /// image-by-image two-thread calls, whose idle OpenBLAS workers spin against Kernels' own
    /// threads between GEMMs. Other backends, and a single image, use one thread here and
    /// parallelize inside each call instead.
    var imageWorkers: Int {
        backend == .openBLAS ? Parallel.chunkCount(geometry.batch, workPerItem: imageWork) : 1
    }

    /// Multiply-adds of one image's GEMM: what decides whether splitting the batch pays.
    private var imageWork: Int { filters * geometry.columnsPerImage }

    /// Floats of one thread's workspace slice: one image's column matrix (none when pointwise),
    /// plus a partial weight gradient when several threads accumulate one.
    private var sliceCount: Int {
        (isPointwise ? 0 : geometry.columnsPerImage) + (imageWorkers > 1 ? filters * geometry.columnRows : 0)
    }

    /// Runs `body(images, slice, alone)` over the batch: once on the calling thread (`alone`:
    /// OpenBLAS and the kernels may use every core), or on one run of images per thread with
    /// OpenBLAS single-threaded, each with its own workspace slice.
    private func forEachImageRun(workspace: UnsafeMutablePointer<Float>?,
                                 _ body: (_ images: Range<Int>, _ slice: UnsafeMutablePointer<Float>?, _ alone: Bool) -> Void) {
        guard imageWorkers > 1 else {
            body(0..<geometry.batch, workspace, true)
            return
        }
        GEMM.withSingleThreadedOpenBLAS {
            Parallel.forEachChunk(geometry.batch, workPerItem: imageWork) { chunk, images in
                body(images, workspace.map { $0 + chunk * sliceCount }, false)
            }
        }
    }

    /// `filters · outputPlaneSize`: the elements of one image's output.
    var outputImageSize: Int { filters * geometry.outputPlaneSize }

    /// `output[n] = weight · im2col(input[n]) + bias`, for each image `n`.
    func forward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let g = geometry
        if usesWinograd {
            forwardWinograd.run(input: input, output: output, bias: bias, workspace: workspace!,
                                kernel: .forward(weight))
            return
        }
        forEachImageRun(workspace: workspace) { images, slice, alone in
            for image in images {
                let columns = columnsOf(input + image * g.imageSize, workspace: slice, parallel: alone)
                let destination = output + image * outputImageSize
                if let bias {
                    // Fused bias: start each output row at its bias and let GEMM accumulate onto it.
                    for filter in 0..<filters {
                        (destination + filter * g.outputPlaneSize).update(repeating: bias[filter], count: g.outputPlaneSize)
                    }
                }
                backend.multiply(transposeA: false, transposeB: false,
                                 m: filters, n: g.outputPlaneSize, k: g.columnRows,
                                 alpha: 1, a: weight, lda: g.columnRows, b: columns, ldb: g.outputPlaneSize,
                                 beta: bias == nil ? 0 : 1, c: destination, ldc: g.outputPlaneSize)
            }
        }
    }

    /// `inputGradient[n] = col2im(weightᵀ · outputGradient[n])`, for each image `n`.
    func backwardData(outputGradient: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      inputGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let g = geometry
        if usesWinograd {
            backwardDataWinograd.run(input: outputGradient, output: inputGradient, bias: nil, workspace: workspace!,
                                     kernel: .backwardData(weight))
            return
        }
        forEachImageRun(workspace: workspace) { images, slice, alone in
            for image in images {
                let destination = inputGradient + image * g.imageSize
                // Pointwise: the column matrix is the image, so GEMM writes the gradient directly.
                let columns = isPointwise ? destination : slice!
                backend.multiply(transposeA: true, transposeB: false,
                                 m: g.columnRows, n: g.outputPlaneSize, k: filters,
                                 alpha: 1, a: weight, lda: g.columnRows,
                                 b: outputGradient + image * outputImageSize, ldb: g.outputPlaneSize,
                                 beta: 0, c: columns, ldc: g.outputPlaneSize)
                if !isPointwise {
                    destination.update(repeating: 0, count: g.imageSize)
                    col2im(columns: columns, geometry: g, image: destination, parallel: alone)
                }
            }
        }
    }

    /// `weightGradient = Σₙ outputGradient[n] · im2col(input[n])ᵀ`, accumulated by GEMM with
    /// beta = 1 after the first group.
    func backwardWeight(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        weightGradient: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let g = geometry
        guard g.batch > 0 else {
            weightGradient.update(repeating: 0, count: filters * g.columnRows)
            return
        }
        if usesWinograd {
            forwardWinograd.weightGradient(input: input, outputGradient: outputGradient,
                                           weightGradient: weightGradient, workspace: workspace!)
            return
        }
        let weightCount = filters * g.columnRows
        // Several threads each accumulate a partial sum in their slice, added up at the end.
        let partials = imageWorkers > 1
        forEachImageRun(workspace: workspace) { images, slice, alone in
            let target = partials ? slice! + (isPointwise ? 0 : g.columnsPerImage) : weightGradient
            for image in images {
                let columns = columnsOf(input + image * g.imageSize, workspace: slice, parallel: alone)
                backend.multiply(transposeA: false, transposeB: true,
                                 m: filters, n: g.columnRows, k: g.outputPlaneSize,
                                 alpha: 1, a: outputGradient + image * outputImageSize, lda: g.outputPlaneSize,
                                 b: columns, ldb: g.outputPlaneSize,
                                 beta: image == images.lowerBound ? 0 : 1, c: target, ldc: g.columnRows)
            }
        }
        guard partials, let workspace else { return }
        let partialOffset = isPointwise ? 0 : g.columnsPerImage
        weightGradient.update(from: workspace + partialOffset, count: weightCount)
        for worker in 1..<imageWorkers {
            VectorOperations.add(workspace + worker * sliceCount + partialOffset, into: weightGradient, count: weightCount)
        }
    }

    /// Per-channel sums of an NCHW buffer: the bias gradient of any layer.
    static func channelSums(_ tensor: UnsafePointer<Float>, batch: Int, channels: Int, planeSize: Int,
                            into sums: UnsafeMutablePointer<Float>) {
        for channel in 0..<channels {
            var total = 0.0
            for image in 0..<batch {
                total += VectorOperations.sum(tensor + (image * channels + channel) * planeSize, count: planeSize)
            }
            sums[channel] = Float(total)
        }
    }

    /// The column matrix of one image: the image itself when pointwise, else im2col into the
    /// workspace.
    private func columnsOf(_ image: UnsafePointer<Float>, workspace: UnsafeMutablePointer<Float>?,
                           parallel: Bool) -> UnsafePointer<Float> {
        if isPointwise { return image }
        im2col(image: image, geometry: geometry, columns: workspace!, parallel: parallel)
        return UnsafePointer(workspace!)
    }
}

extension ConvolutionEngine {
    /// Overflow and BLAS-index checks for the filter side of a convolution.
    static func validateFilterSide(geometry g: ConvGeometry, filters: Int) throws {
        try CheckedArithmetic.requireBLASIndex(filters, argument: "weight", describing: "the filter count")
        _ = try CheckedArithmetic.product(filters, g.columnRows, argument: "weight", describing: "the weight's element count")
        let outputImage = try CheckedArithmetic.product(filters, g.outputPlaneSize, argument: "input", describing: "one output image")
        _ = try CheckedArithmetic.product(g.batch, outputImage, MemoryLayout<Float>.stride,
                                          argument: "input", describing: "the output's byte size")
    }
}

/// Tensor-level passes: allocate the result, run the raw pass, wrap it. The layers pick which
/// pass plays which role.
extension ConvolutionEngine {
    /// The image side `col2im(weightᵀ · filterSide)` plus an optional per-channel bias, shaped
    /// like the image side: the convolution's input gradient, the transposed convolution's output.
    func imageSide(_ filterSide: Tensor, weight: Tensor, channelBias: Tensor? = nil,
                   workspace: UnsafeMutablePointer<Float>?) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: g.batch * g.imageSize) { destination in
            filterSide.withPointer { filterSide in
                weight.withPointer { weight in
                    backwardData(outputGradient: filterSide, weight: weight, inputGradient: destination, workspace: workspace)
                }
            }
            guard let channelBias else { return }
            for image in 0..<g.batch {
                for channel in 0..<g.channels {
                    VectorOperations.add(channelBias.scalars[channel], into: destination + image * g.imageSize + channel * g.inputPlaneSize,
                                         count: g.inputPlaneSize)
                }
            }
        }
        return Tensor(validatedShape: [g.batch, g.channels, g.height, g.width], scalars: scalars)
    }

    /// `Σₙ filterSide[n] · im2col(imageSide[n])ᵀ`, shaped `[filters, channels, KH, KW]`.
    func weightGradient(filterSide: Tensor, imageSide: Tensor, workspace: UnsafeMutablePointer<Float>?) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: filters * g.columnRows) { destination in
            guard g.batch > 0 else {
                destination.update(repeating: 0, count: filters * g.columnRows)
                return
            }
            imageSide.withPointer { imageSide in
                filterSide.withPointer { filterSide in
                    backwardWeight(input: imageSide, outputGradient: filterSide, weightGradient: destination, workspace: workspace)
                }
            }
        }
        return Tensor(validatedShape: [filters, g.channels, g.kernel.height, g.kernel.width], scalars: scalars)
    }

    /// Per-filter sums of the filter side, `[filters]`.
    func filterSideChannelSums(_ filterSide: Tensor) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: filters) { destination in
            guard g.batch > 0 else {
                destination.update(repeating: 0, count: filters)
                return
            }
            filterSide.withPointer { filterSide in
                ConvolutionEngine.channelSums(filterSide, batch: g.batch, channels: filters,
                                              planeSize: g.outputPlaneSize, into: destination)
            }
        }
        return Tensor(validatedShape: [filters], scalars: scalars)
    }

    /// Per-channel sums of the image side, `[channels]`: the transposed convolution's bias gradient.
    func imageSideChannelSums(_ imageSide: Tensor) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: g.channels) { destination in
            guard g.batch > 0 else {
                destination.update(repeating: 0, count: g.channels)
                return
            }
            imageSide.withPointer { imageSide in
                ConvolutionEngine.channelSums(imageSide, batch: g.batch, channels: g.channels,
                                              planeSize: g.inputPlaneSize, into: destination)
            }
        }
        return Tensor(validatedShape: [g.channels], scalars: scalars)
    }

    /// `weight · im2col(imageSide) (+ bias)`, shaped `[batch, filters, OH, OW]`.
    func filterSide(_ imageSide: Tensor, weight: Tensor, bias: Tensor?, workspace: UnsafeMutablePointer<Float>?) -> Tensor {
        let g = geometry
        let scalars = Buffers.make(count: g.batch * outputImageSize) { destination in
            guard g.batch > 0 else { return }
            imageSide.withPointer { imageSide in
                weight.withPointer { weight in
                    bias.withPointer { bias in
                        forward(input: imageSide, weight: weight, bias: bias, output: destination, workspace: workspace)
                    }
                }
            }
        }
        return Tensor(validatedShape: [g.batch, filters, g.outputHeight, g.outputWidth], scalars: scalars)
    }
}
