import Kernels

/// Memory throughput of the column-matrix kernels on each layer's geometry: the library's
/// im2col and contiguous-run col2im (`Im2Col.columns` / `Im2Col.accumulate`), the per-element
/// scatter col2im, and a plain copy of the same bytes as the ceiling.
///
/// Each call handles one image, as Conv2D does: one column matrix (the workspace) is reused
/// for every image of the batch, and each image has its own destination.
struct Col2ImSection {
    let layers: [ConvLayer]
    let policy: TimingPolicy
    /// The cores the library's kernels split their work over.
    let cores: Int

    func run(report: Report, filter: Filter) throws {
        let selected = layers.filter { filter.includes(section: "col2im", name: $0.name) }
        guard !selected.isEmpty else { return }
        var table = TextTable(
            title: "im2col / col2im: GB/s of column-matrix bytes (median), N images per timed run",
            headers: ["layer", "columns/image", "im2col", "col2im", "scatter col2im", "memcpy", "col2im/scatter", "col2im/memcpy"],
            firstNumericColumn: 1)
        for layer in selected {
            let geometry = try layer.geometry()
            report.progress("col2im \(layer.name) \(layer.summary)")
            let columns = FloatBuffer(randomCount: geometry.columnsPerImage)
            let copy = FloatBuffer(randomCount: geometry.columnsPerImage, seed: 5)
            let images = FloatBuffer(randomCount: geometry.batch * geometry.imageSize, seed: 6)
            let bytes = geometry.batch * columns.byteCount

            func image(_ index: Int) -> UnsafeMutablePointer<Float> { images.pointer + index * geometry.imageSize }
            let variants: [(name: String, threads: Int, perImage: (Int) -> Void)] = [
                ("im2col", cores, { Im2Col.columns(image: image($0), geometry: geometry, into: columns.pointer) }),
                ("col2im", cores, { Im2Col.accumulate(columns: columns.pointer, geometry: geometry, into: image($0)) }),
                ("scatter-col2im", 1, { ScatterCol2Im.accumulate(columns: columns.pointer, geometry: geometry, into: image($0)) }),
                ("memcpy", 1, { _ in
                    UnsafeMutableRawPointer(copy.pointer).copyMemory(from: columns.pointer, byteCount: columns.byteCount)
                }),
            ]
            // Interleaved, so the ratios between them hold even while the machine's load changes.
            let timings = policy.measureInterleaved(variants.map { variant in
                { for index in 0..<geometry.batch { variant.perImage(index) } }
            })
            let rates = zip(variants, timings).map { variant, timing in
                var measurement = Measurement(section: "col2im", name: layer.name, variant: variant.name, shape: layer.shape,
                                              timing: timing, threads: variant.threads)
                measurement.bytes = bytes
                measurement.gbPerSecond = Double(bytes) / timing.median / 1e9
                report.record(measurement)
                return Double(bytes) / timing.median / 1e9
            }
            let (im2col, accumulate, scatter, memcpy) = (rates[0], rates[1], rates[2], rates[3])
            Sink.consume(images.pointer[0] + copy.pointer[0])
            table.append([layer.name, Format.bytes(columns.byteCount),
                          Format.number(im2col), Format.number(accumulate), Format.number(scatter), Format.number(memcpy),
                          Format.ratio(accumulate / scatter), Format.percent(accumulate / memcpy * 100)])
        }
        table.notes = [
            "Bytes counted = the column matrix (4·C·KH·KW·OH·OW per image), read by col2im / written by im2col and copied once by memcpy.",
            "im2col and col2im are the library's (im2col split over column rows, col2im over channels, on \(cores) cores);",
            "  the scatter col2im (bounds check and += per entry) and memcpy run on one thread.",
        ]
        report.table(table)
    }
}
