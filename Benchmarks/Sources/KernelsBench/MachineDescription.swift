import Foundation
import Kernels

/// What the figures were measured on, printed above every run so results can be compared.
struct MachineDescription: Encodable {
    let section = "machine"
    let cpu: String
    let cores: Int
    /// The SIMD flags from /proc/cpuinfo that matter to SGEMM kernels.
    let simdFlags: [String]
    let openBLAS: String
    /// The core type whose kernels run, and the one OpenBLAS chose by itself (they differ when
    /// Kernels corrected a fallback to a generic core).
    let openBLASCore: String
    let openBLASDetectedCore: String
    let openBLASThreads: Int
    let loadAverage: String

    enum CodingKeys: String, CodingKey {
        case section, cpu, cores
        case simdFlags = "simd_flags"
        case openBLAS = "openblas"
        case openBLASCore = "openblas_core"
        case openBLASDetectedCore = "openblas_detected_core"
        case openBLASThreads = "openblas_threads"
        case loadAverage = "load_average"
    }

    static let interestingFlags = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                   "avx512_vnni", "avx512_bf16", "amx_tile"]

    init() {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String? {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix(name) {
                guard let colon = line.firstIndex(of: ":") else { continue }
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
        cpu = field("model name") ?? "unknown"
        cores = ProcessInfo.processInfo.activeProcessorCount
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
        simdFlags = MachineDescription.interestingFlags.filter(flags.contains)
        openBLAS = GEMM.openBLASConfiguration.trimmingCharacters(in: .whitespaces)
        openBLASCore = GEMM.openBLASCoreType
        openBLASDetectedCore = GEMM.openBLASDetectedCoreType
        openBLASThreads = GEMM.openBLASThreadCount
        loadAverage = MachineDescription.currentLoadAverage()
    }

    /// The first three fields of /proc/loadavg: how busy the shared machine was (1, 5, 15 min).
    static func currentLoadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// Said only when Kernels replaced OpenBLAS's own choice of kernels.
    private var coreNote: String {
        openBLASCore == openBLASDetectedCore ? ""
            : "\n  (OpenBLAS detected \(openBLASDetectedCore) kernels for this CPU; Kernels selected \(openBLASCore))"
    }

    var summary: String {
        """
        CPU: \(cpu), \(cores) cores online; SIMD: \(simdFlags.joined(separator: " "))
        OpenBLAS: \(openBLAS); \(openBLASThreads) threads by default\(coreNote)
        Load average at start (1/5/15 min): \(loadAverage)
        """
    }
}
