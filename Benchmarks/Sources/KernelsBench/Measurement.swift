/// One measured figure: a `--json` line, and a cell or row of a printed table.
///
/// Optional fields are left out of the JSON when they do not apply (no GFLOP/s for a memory
/// copy, no GB/s for a GEMM).
struct Measurement: Encodable, Sendable {
    /// `gemm`, `conv` or `col2im`.
    var section: String
    /// The row: `square-1024`, a layer name such as `resnet-c2`, or `custom-<shape>`.
    var name: String
    /// What was run: `openBLAS-1thread`, `forward`, `accumulate`, ...
    var variant: String
    /// `m,n,k` for a GEMM; `N,C,H,W,F,KH,KW,stride,padding,dilation` for a layer.
    var shape: String
    /// Median milliseconds per call.
    var ms: Double
    var minMs: Double
    var runs: Int
    /// OpenBLAS threads in force during the call.
    var threads: Int
    var gflops: Double? = nil
    var gbPerSecond: Double? = nil
    /// Bytes counted for `gbPerSecond`.
    var bytes: Int? = nil
    /// The cblas_sgemm rate, measured in the same run, for the GEMMs this call performs.
    var sgemmGflops: Double? = nil
    /// `gflops / sgemmGflops`, as a percentage.
    var percentOfSGEMM: Double? = nil
    /// The extra memory the call used (`Conv2D.workspaceByteCount`).
    var workspaceBytes: Int? = nil

    init(section: String, name: String, variant: String, shape: String, timing: Timing, threads: Int) {
        self.section = section
        self.name = name
        self.variant = variant
        self.shape = shape
        self.ms = timing.median * 1e3
        self.minMs = timing.minimum * 1e3
        self.runs = timing.runs
        self.threads = threads
    }

    enum CodingKeys: String, CodingKey {
        case section, name, variant, shape, ms
        case minMs = "min_ms"
        case runs, threads, gflops
        case gbPerSecond = "gb_per_second"
        case bytes
        case sgemmGflops = "sgemm_gflops"
        case percentOfSGEMM = "percent_of_sgemm"
        case workspaceBytes = "workspace_bytes"
    }
}
