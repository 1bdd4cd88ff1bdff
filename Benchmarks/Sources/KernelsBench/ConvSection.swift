import Kernels

/// Conv2D's forward, backward-input, backward-weight and forward+backward on each layer, with
/// each pass's rate set against cblas_sgemm's on the same GEMM shapes, measured in the same run.
struct ConvSection {
    let layers: [ConvLayer]
    let policy: TimingPolicy
    let threads: Int

    func run(report: Report, filter: Filter) throws {
        let selected = layers.filter { filter.includes(section: "conv", name: $0.name) }
        guard !selected.isEmpty else { return }
        var table = TextTable(
            title: "Convolution (Conv2D through the Tensor API, OpenBLAS on \(threads) threads): median ms, GFLOP/s, % of sgemm",
            headers: ["layer", "N,C,H,W→F,k,s,p", "pass", "ms", "GFLOP/s", "sgemm GFLOP/s", "% of sgemm", "workspace"],
            firstNumericColumn: 3)
        for layer in selected {
            for measurement in try measure(layer, report: report) {
                report.record(measurement)
                table.append([
                    measurement.variant == "forward" ? layer.name : "",
                    measurement.variant == "forward" ? layer.summary : "",
                    measurement.variant, Format.number(measurement.ms),
                    Format.number(measurement.gflops ?? .nan), Format.number(measurement.sgemmGflops ?? .nan),
                    Format.percent(measurement.percentOfSGEMM ?? .nan),
                    Format.bytes(measurement.workspaceBytes ?? 0),
                ])
            }
        }
        table.notes = [
            "FLOPs per pass = 2·N·F·C·KH·KW·OH·OW; forward+backward (forward, then Conv2D.backward) counts three passes.",
            "% of sgemm = the pass's GFLOP/s ÷ cblas_sgemm's on that pass's per-image GEMM shape(s) run N times, timed in",
            "  the same run right after the pass, each in its own warmed-up block, on \(threads) threads",
            "  (forward: F×OH·OW×C·KH·KW; backward-input: Wᵀ·dY; backward-weight: dY·colsᵀ).",
            "  Above 100%: 3×3 stride-1 layers with ≥ 16 channels and ≥ 16 filters (8 without AVX-512) run Winograd F(2×2, 3×3), 2.25× fewer multiplies than that GEMM;",
            "  so do dilated 3×3 layers padded by their dilation with 32+ channels and filters, on their dilation² phase sub-images;",
            "  on AVX2-only CPUs 5×5 and 7×7 stride-1 layers with 32+ channels and 32+ filters run Winograd F(4×4, 5×5) (forward, backward-input; 6.25× fewer)",
            "  and F(2×2, 5×5) (backward-weight; 2.8× fewer), F(2×2, 7×7) (3.1× fewer);",
            "  layers with ≤ 4 input channels (≤ 16 on AVX2-only CPUs, ≤ 8 strided), or 5×5+ stride-1 kernels with 8–64 filters, run a direct AVX2 or AVX-512 kernel (forward, backward-weight, and backward-input at stride 1;",
            "  on AVX2-only CPUs the channel-last kernel below takes forward and backward-input of the other 5×5+ layers with 32+ channels and filters, ahead of the direct kernel with 48+ channels or 7×7+);",
            "  Winograd's products are Kernels' own kernels on AVX-512 CPUs (on AVX2-only ones up to 96 → 96 channels), strided forward passes with < 64 channels or filters",
            "  on AVX-512 CPUs (and the forward and backward-input passes of stride-1 layers with a weight of ≤ 1 MiB) products over a phase-split",
            "  copy (no im2col), as are strided weight gradients with kernel rows under 64 floats; forward passes (and stride-1",
            "  backward-input passes) with 64+ channels and filters a channel-last kernel (filters as vectors; on AVX2-only CPUs 5×5+ with 32+),",
            "  weight gradients with kernel rows of 64+ floats products over a channel-last copy, and 1×1 passes the same",
            "  kernel over each image in place where it pays.",
            "workspace = Conv2D.workspaceByteCount: scratch per call (one block's column matrix per thread, one group of Winograd tiles,",
            "  or one padded, channel-last or phase-split image per thread for the direct and product kernels),",
            "  bounded whatever N; output tensors not counted.",
        ]
        report.table(table)
    }

    private func measure(_ layer: ConvLayer, report: Report) throws -> [Measurement] {
        let geometry = try layer.geometry()
        let conv = layer.convolution()
        let outputShape = try conv.outputShape(input: layer.inputShape, weight: layer.weightShape)
        let input = try Tensor(shape: layer.inputShape, scalars: FloatBuffer(randomCount: geometry.batch * geometry.imageSize).array)
        let weight = try Tensor(shape: layer.weightShape,
                                scalars: FloatBuffer(randomCount: layer.filters * geometry.columnRows, seed: 2).array)
        let bias = try Tensor(shape: [layer.filters], scalars: FloatBuffer(randomCount: layer.filters, seed: 3).array)
        let outputGradient = try Tensor(shape: outputShape,
                                        scalars: FloatBuffer(randomCount: outputShape.reduce(1, *), seed: 4).array)
        let workspace = try conv.workspaceByteCount(input: layer.inputShape, weight: layer.weightShape)

        let flops = layer.flopsPerPass(geometry)
        let shapes = layer.gemmShapes(geometry)
        let forwardGEMM = GEMMOperands(shapes.forward)
        let inputGradientGEMM = GEMMOperands(shapes.inputGradient)
        // The weight gradient accumulates over images (beta = 1), as Conv2D does.
        let weightGradientGEMM = GEMMOperands(shapes.weightGradient, beta: 1)

        /// Times a pass and then its reference in the same run: cblas_sgemm on the same
        /// per-image shapes, once per image, which is what the pass would cost if im2col, col2im
        /// and allocation were free. Each in its own block, as a training loop runs them.
        func pass(_ variant: String, flops: Double, reference: [GEMMOperands],
                  _ body: @escaping () throws -> Void) throws -> Measurement {
            report.progress("conv \(layer.name) \(variant)")
            let sgemm: () throws -> Void = {
                for _ in 0..<layer.batch {
                    for operands in reference { operands.multiply(on: .openBLAS) }
                }
            }
            let timings = try policy.measureInBlocks([body, sgemm])
            let (timing, sgemmSeconds) = (timings[0], timings[1].median)
            var measurement = Measurement(section: "conv", name: layer.name, variant: variant, shape: layer.shape,
                                          timing: timing, threads: threads)
            measurement.gflops = flops / timing.median / 1e9
            measurement.sgemmGflops = flops / sgemmSeconds / 1e9
            measurement.percentOfSGEMM = sgemmSeconds / timing.median * 100
            measurement.workspaceBytes = workspace
            return measurement
        }

        return [
            try pass("forward", flops: flops, reference: [forwardGEMM]) {
                Sink.consume(try conv.forward(input, weight: weight, bias: bias).scalars[0])
            },
            try pass("backward-input", flops: flops, reference: [inputGradientGEMM]) {
                Sink.consume(try conv.inputGradient(outputGradient, inputShape: layer.inputShape, weight: weight).scalars[0])
            },
            try pass("backward-weight", flops: flops, reference: [weightGradientGEMM]) {
                Sink.consume(try conv.weightGradient(outputGradient, input: input, weightShape: layer.weightShape).scalars[0])
            },
            try pass("forward+backward", flops: 3 * flops,
                     reference: [forwardGEMM, inputGradientGEMM, weightGradientGEMM]) {
                let output = try conv.forward(input, weight: weight, bias: bias)
                let gradients = try conv.backward(outputGradient, input: input, weight: weight)
                Sink.consume(output.scalars[0] + gradients.input.scalars[0] + gradients.weight.scalars[0])
            },
        ]
    }
}
