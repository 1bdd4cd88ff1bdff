import CBLAS
import KernelsSIMD
#if canImport(Glibc)
import Glibc
#endif

/// Which of its kernels OpenBLAS runs, corrected once when it fell back to a generic core on a
/// CPU it does not know.
///
/// Why: a `DYNAMIC_ARCH` OpenBLAS (Debian's) picks its kernels from the CPU's model number, and
/// a model newer than the build falls back to "Prescott", SSE3 kernels. Debian 12's OpenBLAS
/// 0.3.21 does that on an Intel Xeon of family 6, model 207 (Emerald Rapids), where its sgemm
/// then ran at 27 GFLOP/s on one thread at n = 1024 against 102 with its SkylakeX kernels and
/// 138 with Cooperlake's (`OPENBLAS_CORETYPE=… kernels-bench --section gemm`, Nov 26 2026).
///
/// So before Kernels' first OpenBLAS call, when OpenBLAS chose a core without AVX2 on a CPU that
/// has AVX2 or AVX-512 (read from CPUID, not from the model), Kernels re-runs OpenBLAS's own
/// core selection with `OPENBLAS_CORETYPE` naming the fastest core the CPU supports (or the next
/// one down, where this OpenBLAS predates it): the same as starting the process with that
/// variable set. OpenBLAS's choice stands when it already uses
/// AVX2 or better, when the process set `OPENBLAS_CORETYPE` itself (the user's choice), and when
/// the library is not a `DYNAMIC_ARCH` build (it then has no selection to re-run).
///
/// The re-run clears OpenBLAS's core pointer for a moment, so nothing else may run OpenBLAS's
/// selection meanwhile. OpenBLAS's own worker thread does, the first time it starts, when
/// OpenBLAS's buffer memory is not set up yet: a worker still starting (early in a process, on
/// busy cores) re-ran the selection at the same time, wrote a null core for this unknown CPU,
/// and the process died on a null dereference in `gotoblas_dynamic_init` (once in a
/// `make bench-peers` run; 111 and 82 of 1 500 starts of `Scripts/openblas_reselection_race.c`,
/// none with the fix). So Kernels first takes and returns one OpenBLAS buffer, which
/// sets that memory up under OpenBLAS's lock and waits out a worker already in there: no
/// worker selects again after that. Other code calling OpenBLAS on other threads during
/// Kernels' first call is not covered; such a process can set `OPENBLAS_CORETYPE` itself.
enum OpenBLASCore {
    /// The core OpenBLAS chose at load time and the one it runs now.
    struct Selection: Sendable, Equatable {
        let detected: String
        let running: String
    }

    /// Made once, on first use: every OpenBLAS call of Kernels goes through ``GEMM/openBLAS``,
    /// which reads this first, so the selection is re-run before any Kernels call is in flight.
    static let selection: Selection = select()

    /// OpenBLAS cores (lowercased `OPENBLAS_CORETYPE` names) whose kernels use AVX2 or better.
    static let vectorCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]

    /// The core OpenBLAS runs now.
    static var runningCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// The fastest core type this CPU and OS support, by instruction set (nil below AVX2).
    static var fastestSupportedCore: String? {
        kernels_openblas_core_for_this_cpu().map { String(cString: $0) }
    }

    /// `core` and the cores below it whose instructions it implies, fastest first.
    static func coresDownFrom(_ core: String) -> [String] {
        let order = ["Cooperlake", "SkylakeX", "Haswell"]
        guard let index = order.firstIndex(of: core) else { return [core] }
        return Array(order[index...])
    }

    private static func select() -> Selection {
        let detected = runningCore
        #if canImport(Glibc)
        typealias Entry = @convention(c) () -> Void
        guard getenv("OPENBLAS_CORETYPE") == nil,
              !vectorCores.contains(detected.lowercased()),
              let fastest = fastestSupportedCore,
              let quit = dlsym(nil, "gotoblas_dynamic_quit"), let initialize = dlsym(nil, "gotoblas_dynamic_init"),
              let allocate = dlsym(nil, "blas_memory_alloc"), let release = dlsym(nil, "blas_memory_free")
        else { return Selection(detected: detected, running: detected) }
        typealias Allocate = @convention(c) (Int32) -> UnsafeMutableRawPointer?
        typealias Release = @convention(c) (UnsafeMutableRawPointer) -> Void
        // See the type's notes: after this, OpenBLAS's workers never run its selection again.
        guard let buffer = unsafeBitCast(allocate, to: Allocate.self)(0) else {
            return Selection(detected: detected, running: detected)
        }
        unsafeBitCast(release, to: Release.self)(buffer)
        // An OpenBLAS older than a core's kernels does not know its name and falls back to
        // Prescott again: the next core down is tried then.
        for wanted in coresDownFrom(fastest) {
            // OpenBLAS reads the variable only inside its selection; it is removed again right
            // after, so the process environment is as it was.
            setenv("OPENBLAS_CORETYPE", wanted, 1)
            unsafeBitCast(quit, to: Entry.self)()
            unsafeBitCast(initialize, to: Entry.self)()
            unsetenv("OPENBLAS_CORETYPE")
            if vectorCores.contains(runningCore.lowercased()) { break }
        }
        #endif
        return Selection(detected: detected, running: runningCore)
    }
}
