/// How the im2col path cuts a run of images into GEMM-sized blocks of output positions.
///
/// One image's column matrix is `columnRows × outputPlaneSize`. GEMM wants it neither too
/// wide nor too narrow:
/// - a wide matrix (a 5×5 kernel over 64×64 pixels is 13 MB per image) is written by im2col
///   and read back by GEMM's packing from memory, which makes a layer with few filters memory
///   bound; cut into bands of output rows it is still in L2 when GEMM packs it.
/// - a narrow one (7×7 or 10×10 outputs: 49 or 100 columns) leaves GEMM far from peak and
///   pays its setup per image; several whole images side by side make one wider GEMM (from
///   about 128 columns, 12×12 or 14×14, one image per GEMM is already faster than copying).
///
/// A block is therefore either a band of output rows of one image, or several whole images.
struct ColumnBlocking: Sendable, Hashable {
    /// Output rows per band; `outputHeight` when blocks are whole images.
    let rowsPerBand: Int
    /// Whole images per block; 1 when blocks are bands.
    let imagesPerGroup: Int
    let outputHeight: Int
    let outputWidth: Int

    /// Columns we aim for per block: below about this many OpenBLAS runs well short of peak.
    static let minimumColumns = 512
    /// Planes of fewer columns than this are grouped into blocks of several images; wider ones
    /// are GEMMed image by image, their staging copies costing more than a wider GEMM gains.
    /// Call-by-call pairs' median ratios, one image per block ÷ groups reaching 512 columns,
    /// 2 threads, 1×1 layers (each thread's 4 images in groups of 2): 14×14 8×1024 → 256
    /// forward 0.947 and 0.950, backward-data 0.931; 8×256 → 1024 forward 0.945, backward-data
    /// 0.948; 8×512 → 512 forward 0.971; 12×12 0.966; 16×16 8×256 → 256 0.893; their weight
    /// gradients unchanged (0.99–1.005; 1×1 at 14×14 and above). Narrower planes
    /// still gain from groups: 10×10 1.057 (and groups of 2 over groups of 4 1.03–1.04), 7×7
    /// groups of 2 over groups of 4 1.08–1.11, one image per block 1.19.
    static let groupedPlaneColumns = 128
    /// Column-matrix floats that stay cache resident between im2col and GEMM (1 MiB of the
    /// 2 MiB L2 per core on the machines we measured; GEMM's packed panels need the rest).
    static let cacheResidentFloats = 1 << 18

    /// - Parameters:
    ///   - columnRows: rows of the column matrix (`C·KH·KW`).
    ///   - images: most images one block may hold (the images of one thread's run).
    ///   - readsInPlace: the image is its own column matrix (pointwise): nothing is written
    ///     before GEMM reads it, so wide planes are never cut into bands.
    init(columnRows: Int, outputHeight: Int, outputWidth: Int, images: Int, readsInPlace: Bool) {
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        let planeSize = outputHeight * outputWidth
        // Widest band whose column matrix stays cache resident (never narrower than GEMM wants).
        let bandColumns = max(Self.minimumColumns, Self.cacheResidentFloats / max(1, columnRows))
        if !readsInPlace && planeSize >= 2 * bandColumns {
            // Balanced bands, each at least `bandColumns` wide (or one output row).
            let bands = min(outputHeight, planeSize / bandColumns)
            rowsPerBand = (outputHeight + bands - 1) / bands
            imagesPerGroup = 1
        } else {
            rowsPerBand = outputHeight
            // Only as many images as make GEMM wide enough: each one more costs staging copies.
            imagesPerGroup = planeSize < Self.groupedPlaneColumns
                ? max(1, min(images, (Self.minimumColumns + planeSize - 1) / planeSize)) : 1
        }
    }

    /// Whether blocks hold several images (their outputs then go through a staging matrix).
    var groupsImages: Bool { imagesPerGroup > 1 }

    /// The widest block's column count: what its workspace matrices are sized for.
    var maximumColumns: Int { imagesPerGroup * rowsPerBand * outputWidth }

    /// Calls `body(images, rows)` for consecutive blocks covering `images` × all output rows:
    /// either one image and a band of rows, or several images and all rows.
    func forEachBlock(of images: Range<Int>, _ body: (_ images: Range<Int>, _ rows: Range<Int>) -> Void) {
        // Groups of near-equal size: 4 images by at most 3 make 2 + 2, not 3 + 1.
        let groups = (images.count + imagesPerGroup - 1) / imagesPerGroup
        for group in 0..<groups {
            let first = images.lowerBound + images.count * group / groups
            let last = images.lowerBound + images.count * (group + 1) / groups
            for top in stride(from: 0, to: outputHeight, by: rowsPerBand) {
                body(first..<last, top..<min(outputHeight, top + rowsPerBand))
            }
        }
    }
}
