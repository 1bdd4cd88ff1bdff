import Testing
@testable import Kernels

/// ``PartialSums/add(_:count:into:)`` against a sum in order on one thread, bit for bit: counts
/// that split across cores into ranges ending mid-line, one partial, and the destination being
/// the first partial itself (as ``ImageProductSum`` calls it).
@Suite struct PartialSumsTests {
    @Test(arguments: [(3, 100_003), (2, 17), (1, 40_000), (4, 65_536)])
    func matchesOrderedSum(partialCount: Int, count: Int) {
        var generator = SeededGenerator(seed: UInt64(partialCount * 7919 + count))
        let partials = (0..<partialCount).map { _ in (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }
        var expected = partials[0]
        for partial in partials.dropFirst() {
            for index in 0..<count { expected[index] += partial[index] }
        }
        for inPlace in [false, true] {
            let pointers = partials.map { partial in
                let pointer = UnsafeMutablePointer<Float>.allocate(capacity: count)
                pointer.initialize(from: partial, count: count)
                return pointer
            }
            defer { pointers.forEach { $0.deallocate() } }
            let destination = inPlace ? pointers[0] : UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { if !inPlace { destination.deallocate() } }
            PartialSums.add(pointers.map { UnsafePointer($0) }, count: count, into: destination)
            #expect(Array(UnsafeBufferPointer(start: destination, count: count)) == expected, "in place: \(inPlace)")
        }
    }
}
