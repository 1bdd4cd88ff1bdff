import Testing
@testable import Kernels

/// ``WorkspacePool``: buffers are reused across calls, concurrent holders get distinct buffers,
/// and large ones (the huge-page path on Linux) are aligned to 2 MiB and usable end to end.
@Suite struct WorkspacePoolTests {
    @Test func largeBuffersAreHugePageAlignedWritableAndReused() {
        let pool = WorkspacePool()
        let count = (3 << 20) / MemoryLayout<Float>.stride + 5 // just over 3 MiB
        let first = pool.withWorkspace(count: count) { buffer -> UInt in
            let buffer = buffer!
            for index in 0..<count { buffer[index] = Float(index % 1000) }
            #expect((0..<count).allSatisfy { buffer[$0] == Float($0 % 1000) })
            return UInt(bitPattern: buffer)
        }
        #if os(Linux)
        #expect(first % UInt(1 << 21) == 0)
        #endif
        // A smaller request afterwards gets the cached buffer back rather than a new allocation.
        let second = pool.withWorkspace(count: count / 2) { UInt(bitPattern: $0!) }
        #expect(second == first)
    }

    @Test func smallBuffersAreCacheLineAlignedAndNestedCallsGetTheirOwn() {
        let pool = WorkspacePool()
        pool.withWorkspace(count: 100) { outer in
            #expect(UInt(bitPattern: outer!) % 64 == 0)
            pool.withWorkspace(count: 100) { inner in
                #expect(inner != outer)
            }
        }
        #expect(pool.withWorkspace(count: 0) { $0 == nil })
    }
}
