import Kernels

/// cblas_sgemm against the pure-Swift matrix multiplies, on square sizes and on the
/// per-image forward GEMM shapes of the convolution layers.
///
/// OpenBLAS is timed on one thread and on all of them; the Swift versions run however the
/// library runs them (they ignore the OpenBLAS thread count). The triple loop is only run up to `naiveLimit` multiply-adds:
/// beyond that it takes seconds per call and its rate no longer changes.
struct GEMMSection {
    let squareSizes: [Int]
    let layers: [ConvLayer]
    let naiveLimit: Int
    let policy: TimingPolicy
    let allThreads: Int

    private struct Row {
        let name: String
        let shape: GEMMShape
    }

    /// GFLOP/s of each backend for one row; nil when skipped.
    private struct Rates {
        var openBLASSingle = Double.nan
        var openBLASAll = Double.nan
        var blocked = Double.nan
        var naive: Double?
    }

    func run(report: Report, filter: Filter) {
        var rows = squareSizes.map { Row(name: "square-\($0)", shape: GEMMShape(m: $0, n: $0, k: $0)) }
        for layer in layers {
            guard let geometry = try? layer.geometry() else { continue }
            rows.append(Row(name: layer.name, shape: layer.gemmShapes(geometry).forward))
        }
        rows = rows.filter { filter.includes(section: "gemm", name: $0.name) }
        guard !rows.isEmpty else { return }

        var table = TextTable(
            title: "GEMM: C = A·B, row-major, GFLOP/s (median); 1T = OpenBLAS on 1 thread, \(allThreads)T = on \(allThreads)",
            headers: ["row", "m×n×k", "OpenBLAS 1T", "OpenBLAS \(allThreads)T", "swiftBlocked", "swiftNaive",
                      "1T/blocked", "\(allThreads)T/blocked", "1T/naive", "\(allThreads)T/naive"],
            firstNumericColumn: 2)
        var ratesByName: [String: Rates] = [:]
        var largestNaive: (shape: GEMMShape, gflops: Double)?

        for row in rows {
            report.progress("gemm \(row.name) \(row.shape)")
            let operands = GEMMOperands(row.shape)
            let runsNaive = row.shape.multiplyAdds <= naiveLimit
            let gflops = measure(row, operands, includingNaive: runsNaive, report)
            var rates = Rates(openBLASSingle: gflops[0], openBLASAll: gflops[1], blocked: gflops[2])
            if runsNaive {
                rates.naive = gflops[3]
                if row.shape.multiplyAdds > largestNaive?.shape.multiplyAdds ?? 0 {
                    largestNaive = (row.shape, gflops[3])
                }
            }
            ratesByName[row.name] = rates
            let naive = rates.naive ?? .nan
            table.append([
                row.name, "\(row.shape)",
                Format.number(rates.openBLASSingle), Format.number(rates.openBLASAll),
                Format.number(rates.blocked), rates.naive.map(Format.number) ?? "skipped",
                Format.ratio(rates.openBLASSingle / rates.blocked), Format.ratio(rates.openBLASAll / rates.blocked),
                Format.ratio(rates.openBLASSingle / naive), Format.ratio(rates.openBLASAll / naive),
            ])
        }

        table.notes = notes(rows: rows, ratesByName: ratesByName, largestNaive: largestNaive)
        report.table(table)
    }

    /// Times OpenBLAS on one thread and on all, swiftBlocked and (when affordable) swiftNaive
    /// on one row, interleaved so they share the machine's load; records them and returns
    /// their GFLOP/s in that order.
    private func measure(_ row: Row, _ operands: GEMMOperands, includingNaive: Bool, _ report: Report) -> [Double] {
        var variants: [(name: String, threads: Int, backend: GEMMBackend)] = [
            ("openBLAS-1thread", 1, .openBLAS),
            ("openBLAS-\(allThreads)threads", allThreads, .openBLAS),
            ("swiftBlocked", allThreads, .swiftBlocked),
        ]
        if includingNaive { variants.append(("swiftNaive", allThreads, .swiftNaive)) }
        let timings = policy.measureInterleaved(
            variants.map { variant in { operands.multiply(on: variant.backend) } },
            prepare: { GEMM.openBLASThreadCount = variants[$0].threads })
        GEMM.openBLASThreadCount = allThreads
        return zip(variants, timings).map { variant, timing in
            let gflops = row.shape.flops / timing.median / 1e9
            var measurement = Measurement(section: "gemm", name: row.name, variant: variant.name,
                                          shape: "\(row.shape.m),\(row.shape.n),\(row.shape.k)",
                                          timing: timing, threads: variant.threads)
            measurement.gflops = gflops
            report.record(measurement)
            return gflops
        }
    }

    private func notes(rows: [Row], ratesByName: [String: Rates],
                       largestNaive: (shape: GEMMShape, gflops: Double)?) -> [String] {
        var notes = ["Layer rows are one image's forward GEMM: m = F, n = OH·OW, k = C·KH·KW."]
        let skipped = rows.filter { ratesByName[$0.name]?.naive == nil }
        if !skipped.isEmpty {
            var note = "swiftNaive is skipped where m·n·k > \(naiveLimit) (it is slow, and its rate stops changing)"
            if let largestNaive {
                let estimates = skipped.map { row in
                    "\(row.name) ~\(Format.number(row.shape.flops / largestNaive.gflops / 1e9)) s"
                }
                note += "; extrapolated from its \(Format.number(largestNaive.gflops)) GFLOP/s at \(largestNaive.shape), one call would take: "
                    + estimates.joined(separator: ", ")
            }
            notes.append(note + ".")
        }
        if let rates = ratesByName["square-1024"] {
            let half = rates.openBLASSingle / 2
            let verdict = rates.blocked >= half ? "meets" : "is below"
            notes.append("n=1024: swiftBlocked \(Format.number(rates.blocked)) GFLOP/s \(verdict) half of OpenBLAS single-thread "
                + "(\(Format.number(half)) of \(Format.number(rates.openBLASSingle))): "
                + "\(Format.percent(rates.blocked / half * 100)) of that target.")
        }
        return notes
    }
}
