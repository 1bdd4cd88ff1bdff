import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Splits `0..<count` into one contiguous chunk per core, or runs it inline when the work
/// is too small to pay for waking threads.
///
/// Kernels' own threads never run at the same time as an OpenBLAS call of the same
/// operation (im2col, then sgemm, then col2im, in sequence), so the two thread pools do not
/// oversubscribe the cores. Callers make each index write a disjoint region.
enum Parallel {
    /// Below this many scalar operations a loop runs on the calling thread.
    static let minimumParallelWork = 1 << 15

    /// The threads Kernels itself runs on, read once: `KERNELS_NUM_THREADS` when it is set to a
    /// positive number (the counterpart of `OPENBLAS_NUM_THREADS` for im2col, col2im, Winograd
    /// transforms and pooling), else the cores online.
    static let coreCount: Int = {
        #if canImport(Glibc)
        if let text = getenv("KERNELS_NUM_THREADS"), let requested = Int(String(cString: text)), requested > 0 {
            return requested
        }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }()

    static func forEach(_ count: Int, workPerItem: Int, _ body: (Range<Int>) -> Void) {
        forEachChunk(count, workPerItem: workPerItem) { _, range in body(range) }
    }

    /// Like ``forEach(_:workPerItem:_:)``, also passing each chunk's index (`0..<chunkCount`),
    /// so a chunk can use its own slice of a workspace.
    static func forEachChunk(_ count: Int, workPerItem: Int, _ body: (_ chunk: Int, Range<Int>) -> Void) {
        let chunks = chunkCount(count, workPerItem: workPerItem)
        guard chunks > 1 else {
            if count > 0 { body(0, 0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // Callers give each chunk a disjoint region, which is what makes sharing `body` safe.
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                body(chunk, (count * chunk / chunks)..<(count * (chunk + 1) / chunks))
            }
        }
    }

    /// Runs `body(worker, index)` for every index in `0..<count`, on as many workers as
    /// ``forEachChunk(_:workPerItem:_:)`` would use, each taking the next index as it finishes
    /// one: when a core is slowed (this VM's cores are shared), the other takes more of the
    /// items instead of waiting at the end for a fixed half. `worker` (`0..<chunkCount`) picks
    /// a workspace slice. Only for items whose results do not depend on which worker ran them
    /// (partial sums keep ``forEachChunk(_:workPerItem:_:)``'s fixed order).
    static func forEachDynamic(_ count: Int, workPerItem: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
        let workers = chunkCount(count, workPerItem: workPerItem)
        guard workers > 1 else {
            for index in 0..<count { body(0, index) }
            return
        }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            // Each index is taken by exactly one worker, and callers give each index a disjoint region.
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while true {
                    let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard index < count else { return }
                    body(worker, index)
                }
            }
        }
    }

    /// How many chunks ``forEachChunk(_:workPerItem:_:)`` splits `count` items into: one per
    /// core, or 1 when the work is too small to pay for waking threads (a `workPerItem` of 0
    /// asks for the calling thread only).
    static func chunkCount(_ count: Int, workPerItem: Int) -> Int {
        let chunks = min(count, coreCount)
        return chunks > 1 && workPerItem > 0 && count &* workPerItem >= minimumParallelWork ? chunks : 1
    }
}
