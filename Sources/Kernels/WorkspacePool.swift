/// Scratch buffers reused across calls, so a layer run in a training loop does not pay for a
/// fresh allocation (and its page faults) every time.
///
/// A call takes the smallest cached buffer that is large enough, or allocates one, and gives it
/// back afterwards. At most ``maximumCachedBuffers`` buffers and ``maximumCachedBytes`` bytes are
/// kept; beyond that a returned buffer is freed. Concurrent callers each get their own buffer,
/// so the pool is safe to use from many tasks at once.
final class WorkspacePool: Sendable {
    static let shared = WorkspacePool()

    /// One buffer per concurrent caller is enough; more would only hold memory.
    let maximumCachedBuffers = 4
    let maximumCachedBytes = 512 << 20

    /// 64-byte alignment: one cache line, and what AVX-512 loads would want.
    private static let alignment = 64

    /// Buffers this large or larger are aligned to it and offered to Linux as transparent huge
    /// pages (`madvise(MADV_HUGEPAGE)`; Debian's default only backs memory advised so): the
    /// product kernel reads its operands as hundreds of row streams, and with 4 KiB pages a
    /// 128-row pass touched more pages than the first-level TLB holds. Minima of 5 alternating
    /// one-thread `prof` runs: 8×512×7×7 → 512 Winograd forward 11.8 → 11.3 ms, resnet-c3s2
    /// forward 7.61 → 7.44 and weight gradient 7.59 → 7.47, resnet-c2 forward 8.93 → 8.68.
    /// The rounding up to whole huge pages costs under 2 MiB a buffer, paid once: buffers are reused.
    private static let hugePageBytes = HugePageAdvice.hugePageBytes

    private struct Buffer: @unchecked Sendable {
        // Owned exclusively by whoever holds it: the pool's list or one caller.
        let pointer: UnsafeMutableRawPointer
        let byteCount: Int
    }

    private let cached = Locked<[Buffer]>([])

    /// A pool that goes away frees what it still caches (the shared one never does; others are
    /// made by tests).
    deinit {
        for buffer in cached.withLock({ $0 }) { buffer.pointer.deallocate() }
    }

    /// Runs `body` with `count` floats of uninitialized scratch memory (nil when `count` is 0).
    func withWorkspace<Result>(count: Int, _ body: (UnsafeMutablePointer<Float>?) throws -> Result) rethrows -> Result {
        guard count > 0 else { return try body(nil) }
        let byteCount = count * MemoryLayout<Float>.stride
        let buffer = take(byteCount: byteCount)
        defer { give(buffer) }
        return try body(buffer.pointer.bindMemory(to: Float.self, capacity: count))
    }

    private func take(byteCount: Int) -> Buffer {
        let reused = cached.withLock { buffers -> Buffer? in
            guard let best = buffers.indices.filter({ buffers[$0].byteCount >= byteCount })
                .min(by: { buffers[$0].byteCount < buffers[$1].byteCount }) else { return nil }
            return buffers.remove(at: best)
        }
        return reused ?? Self.allocate(byteCount: byteCount)
    }

    private static func allocate(byteCount: Int) -> Buffer {
        #if os(Linux)
        if byteCount >= hugePageBytes {
            let rounded = (byteCount + hugePageBytes - 1) / hugePageBytes * hugePageBytes
            let pointer = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: hugePageBytes)
            HugePageAdvice.preferHugePages(pointer, byteCount: rounded)
            return Buffer(pointer: pointer, byteCount: rounded)
        }
        #endif
        return Buffer(pointer: .allocate(byteCount: byteCount, alignment: alignment), byteCount: byteCount)
    }

    private func give(_ buffer: Buffer) {
        let evicted = cached.withLock { buffers -> [Buffer] in
            buffers.append(buffer)
            // Keep the largest buffers: they serve every smaller request too.
            buffers.sort { $0.byteCount > $1.byteCount }
            var evicted: [Buffer] = []
            while buffers.count > maximumCachedBuffers
                    || buffers.reduce(0, { $0 + $1.byteCount }) > maximumCachedBytes {
                evicted.append(buffers.removeLast())
            }
            return evicted
        }
        for buffer in evicted { buffer.pointer.deallocate() }
    }
}
