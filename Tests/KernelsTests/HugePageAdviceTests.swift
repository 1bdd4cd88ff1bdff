import Foundation
import Testing
@testable import Kernels

/// Large result buffers are advised onto huge pages, and only the whole 2 MiB pages inside them.
struct HugePageAdviceTests {
    private let page = UInt(HugePageAdvice.hugePageBytes)

    @Test func onlyWholeAlignedPagesInsideTheBufferAreAdvised() {
        // Starts 4 KiB past a boundary: the first whole page begins at the next boundary.
        #expect(HugePageAdvice.alignedInterior(of: 3 * page + 4096, byteCount: Int(3 * page))
                == 4 * page..<6 * page)
        // Exactly aligned and exactly two pages long: both pages.
        #expect(HugePageAdvice.alignedInterior(of: 2 * page, byteCount: Int(2 * page)) == 2 * page..<4 * page)
        // One byte short of a whole page, and a buffer straddling a boundary: nothing.
        #expect(HugePageAdvice.alignedInterior(of: 2 * page, byteCount: Int(page) - 1).isEmpty)
        #expect(HugePageAdvice.alignedInterior(of: 2 * page + 16, byteCount: Int(page)).isEmpty)
        #expect(HugePageAdvice.alignedInterior(of: 16, byteCount: 0).isEmpty)
    }

    @Test func aLargeResultIsWrittenInFullAndItsMemoryCarriesTheHint() throws {
        let count = 3 << 20  // 12 MiB of floats
        let values = Buffers.make(count: count) { buffer in
            for index in 0..<count { buffer[index] = Float(index % 1000) }
        }
        #expect(values.count == count)
        #expect(values.indices.allSatisfy { values[$0] == Float($0 % 1000) })

        // Linux lists VM_HUGEPAGE as "hg" in the flags of the mapping that holds the advised pages.
        guard FileManager.default.fileExists(atPath: "/sys/kernel/mm/transparent_hugepage/enabled"),
              let data = FileHandle(forReadingAtPath: "/proc/self/smaps")?.readDataToEndOfFile(),
              let smaps = String(data: data, encoding: .utf8)
        else { return }
        let start = values.withUnsafeBufferPointer { UInt(bitPattern: Int(bitPattern: $0.baseAddress!)) }
        let interior = HugePageAdvice.alignedInterior(of: start, byteCount: count * 4)
        var inMapping = false
        var flags: String?
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let low = UInt(line[..<dash], radix: 16), let high = UInt(line[line.index(after: dash)..<space], radix: 16) {
                inMapping = low <= interior.lowerBound && interior.lowerBound < high
            } else if inMapping, line.hasPrefix("VmFlags:") {
                flags = String(line)
            }
        }
        let mappingFlags = try #require(flags, "no mapping in /proc/self/smaps holds the result")
        #expect(mappingFlags.split(separator: " ").contains("hg"), "\(mappingFlags)")
    }
}
