import ArgumentParser
import Kernels

/// `kernels-bench`: prints how fast Kernels is on this machine, next to cblas_sgemm measured
/// in the same run. See Benchmarks/README.md.
@main
struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels-bench",
        abstract: "Benchmarks Kernels' GEMM, convolution and im2col/col2im against OpenBLAS sgemm.",
        discussion: """
            Sections: gemm (cblas_sgemm vs GEMM.swiftBlocked / swiftNaive), conv (Conv2D passes on \
            the layer table, as % of sgemm on the same shapes), col2im (GB/s vs a scatter loop and memcpy). \
            Every figure is a median of repeated runs after a warm-up.
            """)

    @Flag(help: "Print one JSON object per measurement (and one for the machine) instead of tables.")
    var json = false

    @Flag(help: "Print the tables as GitHub markdown.")
    var markdown = false

    @Option(name: .customLong("filter"),
            help: "Run only rows whose id section/name contains this text, e.g. gemm/square, conv/resnet-c2, col2im (repeatable).")
    var filters: [String] = []

    @Flag(help: "A seconds-long smoke run: small squares, batch-1 layers, a few runs each. Its figures mean nothing.")
    var quick = false

    @Option(name: .customLong("section"),
            help: "Run only this section: gemm, conv or col2im (repeatable; default all).")
    var sections: [Section] = []

    @Option(name: .customLong("layer"),
            help: ArgumentHelp("Also benchmark this convolution layer (repeatable; dilation may be left off).",
                               valueName: "N,C,H,W,F,KH,KW,stride,padding,dilation"))
    var extraLayers: [ConvLayer] = []

    @Flag(help: "Benchmark only the --layer layers, not the built-in table.")
    var onlyGivenLayers = false

    @Option(help: "Seconds of timed runs per measurement (at least 5 runs are taken regardless).")
    var budget: Double = 1.0

    func validate() throws {
        guard budget > 0 else { throw ValidationError("--budget must be positive, not \(budget)") }
        guard !(onlyGivenLayers && extraLayers.isEmpty) else {
            throw ValidationError("--only-given-layers needs at least one --layer")
        }
        for layer in extraLayers {
            do {
                _ = try layer.geometry()
                _ = try layer.convolution().outputShape(input: layer.inputShape, weight: layer.weightShape)
            } catch {
                throw ValidationError("--layer \(layer.shape): \(error)")
            }
        }
    }

    func run() throws {
        let report = Report(style: json ? .json : markdown ? .markdown : .table, showsProgress: !quick)
        let filter = Filter(filters)
        let machine = MachineDescription()
        let allThreads = machine.openBLASThreads
        let clock = ContinuousClock()
        let started = clock.now

        var layers = (onlyGivenLayers ? [] : ConvLayer.table) + extraLayers
        let policy: TimingPolicy
        let squareSizes: [Int]
        let naiveLimit: Int
        if quick {
            layers = layers.map(\.singleImage)
            policy = .quick
            squareSizes = [64, 128, 256]
            naiveLimit = 128 * 128 * 128
        } else {
            policy = .full(budgetSeconds: budget)
            squareSizes = [64, 128, 256, 512, 1024, 2048]
            naiveLimit = 512 * 512 * 512
        }

        if json {
            report.emitJSON(machine)
        } else {
            report.text("Kernels benchmark\(quick ? " (--quick smoke run: batch 1, few runs; figures are not meaningful)" : "")")
            report.text(machine.summary + "\n")
        }

        let chosen = Set(sections.isEmpty ? Section.allCases : sections)
        if chosen.contains(.gemm) {
            GEMMSection(squareSizes: squareSizes, layers: layers, naiveLimit: naiveLimit, policy: policy, allThreads: allThreads)
                .run(report: report, filter: filter)
        }
        if chosen.contains(.conv) {
            try ConvSection(layers: layers, policy: policy, threads: allThreads).run(report: report, filter: filter)
        }
        if chosen.contains(.col2im) {
            try Col2ImSection(layers: layers, policy: policy, cores: machine.cores).run(report: report, filter: filter)
        }

        let elapsed = (clock.now - started).seconds
        report.text("Load average at end (1/5/15 min): \(MachineDescription.currentLoadAverage()); "
            + "total \(Format.fixed(elapsed, decimals: 1)) s")
        report.progress("done")
    }
}
