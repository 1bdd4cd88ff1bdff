import Dispatch
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
        let chunks = min(count, coreCount)
        guard chunks > 1, count &* max(1, workPerItem) >= minimumParallelWork else {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // Callers give each chunk a disjoint region, which is what makes sharing `body` safe.
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                body((count * chunk / chunks)..<(count * (chunk + 1) / chunks))
            }
        }
    }
}
