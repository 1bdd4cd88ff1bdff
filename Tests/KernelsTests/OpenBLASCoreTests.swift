import Foundation
import Testing
@testable import Kernels

/// OpenBLAS runs vector kernels wherever the CPU has them, even when its own model-number
/// detection fell back to a generic core (see `OpenBLASCore`).
struct OpenBLASCoreTests {
    /// Whether this process could have had its core re-selected: a DYNAMIC_ARCH build, and no
    /// `OPENBLAS_CORETYPE` of the user's.
    private var selectionCanRun: Bool {
        GEMM.openBLASConfiguration.contains("DYNAMIC_ARCH") && ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil
    }

    @Test func runsTheFastestSupportedCoreWhenOpenBLASFellBackToAGenericOne() {
        let (detected, running) = (GEMM.openBLASDetectedCoreType, GEMM.openBLASCoreType)
        let detectedIsVector = OpenBLASCore.vectorCores.contains(detected.lowercased())
        if detectedIsVector || !selectionCanRun {
            #expect(running == detected, "OpenBLAS's own choice of \(detected) should stand")
        } else if let fastest = OpenBLASCore.fastestSupportedCore {
            // The fastest, or a slower vector core where this OpenBLAS predates the fastest.
            #expect(OpenBLASCore.coresDownFrom(fastest).map { $0.lowercased() }.contains(running.lowercased()),
                    "OpenBLAS fell back to \(detected) on a CPU that runs \(fastest) kernels, and runs \(running)")
        } else {
            #expect(running == detected, "a CPU without AVX2 keeps OpenBLAS's choice")
        }
        // The configuration string names the running core, not the one detected at load.
        #expect(GEMM.openBLASConfiguration.lowercased().contains(running.lowercased()))
    }

    @Test func triesSlowerCoresWhenOpenBLASDoesNotKnowTheFastest() {
        #expect(OpenBLASCore.coresDownFrom("Cooperlake") == ["Cooperlake", "SkylakeX", "Haswell"])
        #expect(OpenBLASCore.coresDownFrom("SkylakeX") == ["SkylakeX", "Haswell"])
        #expect(OpenBLASCore.coresDownFrom("Haswell") == ["Haswell"])
    }

    @Test func leavesTheEnvironmentAsItWas() {
        _ = GEMM.openBLASCoreType
        if selectionCanRun {
            #expect(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil)
        }
    }

    @Test func fastestSupportedCoreMatchesTheCPUFlags() throws {
        // /proc/cpuinfo is the kernel's view of CPUID; the selection reads CPUID itself.
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let avx512 = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"].allSatisfy(flags.contains)
        let expected: String? = if avx512 {
            flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        } else if flags.isSuperset(of: ["avx2", "fma"]) {
            "Haswell"
        } else {
            nil
        }
        #expect(OpenBLASCore.fastestSupportedCore == expected)
    }
}
