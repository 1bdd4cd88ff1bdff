/// The sum of the threads' partial results of a pass split by images (its weight gradient),
/// itself split across cores by ranges of elements.
///
/// Why: added up on the calling thread, the partials of a large weight (1 MiB for
/// 8×1024×14×14 → 256 1×1, 4.7 MB for 8×256×28×28 → 512 3×3 stride 2) kept the other core
/// idle at the end of every weight-gradient pass.
///
/// Each element is the same sum in the same order (partial 0, then 1, …) however the ranges
/// fall, so the bits never depend on the split or the timing.
enum PartialSums {
    /// `destination[i] = Σₖ partials[k][i]` (k in order) for `i` in `0..<count`; `destination`
    /// may be `partials[0]` itself.
    static func add(_ partials: [UnsafePointer<Float>], count: Int, into destination: UnsafeMutablePointer<Float>) {
        guard let first = partials.first else { return }
        // Ranges of whole 16-float runs: whole cache lines where the destination starts on one
        // (the workspace and results do), so no two threads then write one line.
        let lines = (count + 15) / 16
        Parallel.forEach(lines, workPerItem: 16 * partials.count) { range in
            let start = range.lowerBound * 16
            let length = min(count, range.upperBound * 16) - start
            guard length > 0 else { return }
            if UnsafePointer(destination) != first { (destination + start).update(from: first + start, count: length) }
            for partial in partials.dropFirst() {
                VectorOperations.add(partial + start, into: destination + start, count: length)
            }
        }
    }
}
