import KernelsSIMD

/// A sum over a batch of one product per image: the weight gradients ``ProductKernel`` computes
/// (``ImplicitConvolution``, ``PointwiseWeightGradient``).
///
/// Each thread takes a fixed run of images (``Parallel/forEachChunk(_:workPerItem:_:)``) into
/// its own workspace slice, whose partial sum the run's first image writes and the others add
/// to; the partials are then added into the first slice's in thread order, so the bits never
/// depend on timing. When the batch is not split (one image, or little work), each image's rows
/// are split across cores in blocks of 6, the kernel's row block, instead.
struct ImageProductSum {
    let batch: Int
    /// Threads the batch is split across (``ConvGeometry/imageWorkers(filters:)``).
    let imageWorkers: Int
    /// Multiply-adds of one image's product.
    let imageWork: Int
    /// Rows of the partial sum, `rowLength` floats each.
    let rows: Int
    let rowLength: Int
    /// Floats from one thread's slice to the next, and where in a slice its partial sum starts.
    let sliceCount: Int
    let partialOffset: Int

    /// Runs `prepare(image, slice)` and then `multiply(image, slice, rows, accumulate)` for every
    /// image, and returns the summed partial (in the first slice). The first `zeroing` floats of
    /// every slice are zeroed once before: what no image writes there (a copy's padding) then
    /// stays zero for the whole call.
    func run(workspace: UnsafeMutablePointer<Float>, zeroing: Int = 0,
             prepare: (_ image: Int, _ slice: UnsafeMutablePointer<Float>) -> Void,
             multiply: (_ image: Int, _ slice: UnsafeMutablePointer<Float>, _ rows: Range<Int>, _ accumulate: Bool) -> Void)
        -> UnsafeMutablePointer<Float> {
        for slice in 0..<max(1, imageWorkers) { (workspace + slice * sliceCount).update(repeating: 0, count: zeroing) }
        if imageWorkers > 1 {
            Parallel.forEachChunk(batch, workPerItem: imageWork) { chunk, images in
                let slice = workspace + chunk * sliceCount
                for image in images {
                    prepare(image, slice)
                    multiply(image, slice, 0..<rows, image != images.lowerBound)
                }
            }
        } else {
            let block = Int(KERNELS_DIRECT_FILTER_BLOCK)
            for image in 0..<batch {
                prepare(image, workspace)
                Parallel.forEach((rows + block - 1) / block, workPerItem: block * (imageWork / max(1, rows))) { blocks in
                    multiply(image, workspace, (block * blocks.lowerBound)..<min(rows, block * blocks.upperBound), image > 0)
                }
            }
        }
        let partial = workspace + partialOffset
        if imageWorkers > 1 {
            PartialSums.add((0..<imageWorkers).map { UnsafePointer(workspace + $0 * sliceCount + partialOffset) },
                            count: rows * rowLength, into: partial)
        }
        return partial
    }
}
