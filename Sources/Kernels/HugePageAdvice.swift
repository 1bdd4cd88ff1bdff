#if canImport(Glibc)
import Glibc
#endif

/// Asks Linux to back a freshly allocated result buffer with 2 MiB pages where it can.
///
/// Why: every call returns its result in a new `[Float]`, and once glibc has given a freed
/// result back to the system (it trims the heap or unmaps a large block), the next result
/// lands on untouched memory, which the kernel faults in 4 KiB at a time as Kernels writes
/// it. A 16 MiB output then cost 10 ms of page faults where the same memory under a
/// `MADV_HUGEPAGE` hint cost 1.9 ms (fresh mapping, fill, unmap, mean of 40; Intel Xeon
/// family 6 model 207, Linux 6.18, `transparent_hugepage` = `madvise`, Nov 26 2026); forward
/// then backward of 64×64×32×32 → 64 3×3 took 50 instead of 65 ms (minimum of three runs) when
/// every call started on fresh memory. Only whole 2 MiB-aligned pages inside the buffer are
/// advised, so the hint never reaches memory Kernels does not own, and it is only a hint:
/// with transparent huge pages off, or on other systems, nothing changes. PyTorch offers the
/// same for its CPU tensors behind `THP_MEM_ALLOC_ENABLE`.
enum HugePageAdvice {
    /// The transparent huge page size on x86-64 and most arm64 Linux kernels.
    static let hugePageBytes = 1 << 21

    /// The whole huge pages inside `byteCount` bytes from `start`, as a byte range (empty when
    /// none fits).
    static func alignedInterior(of start: UInt, byteCount: Int) -> Range<UInt> {
        let size = UInt(hugePageBytes)
        let first = (start + size - 1) & ~(size - 1)
        let last = (start + UInt(byteCount)) & ~(size - 1)
        return first < last ? first..<last : first..<first
    }

    /// Advises huge pages for the whole 2 MiB pages inside `buffer`; call it before the first
    /// write, which is when the kernel picks the page size.
    static func preferHugePages(_ buffer: UnsafeMutableRawPointer, byteCount: Int) {
        #if os(Linux)
        let interior = alignedInterior(of: UInt(bitPattern: Int(bitPattern: buffer)), byteCount: byteCount)
        guard !interior.isEmpty, let start = UnsafeMutableRawPointer(bitPattern: interior.lowerBound) else { return }
        // A failure (no transparent huge pages in this kernel) leaves the buffer as it was.
        _ = madvise(start, interior.count, MADV_HUGEPAGE)
        #endif
    }
}
