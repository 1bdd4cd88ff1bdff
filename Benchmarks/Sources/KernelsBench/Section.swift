import ArgumentParser

/// The parts of a run, in the order they print; `--section` picks some of them.
enum Section: String, CaseIterable, ExpressibleByArgument, Sendable {
    case gemm, conv, col2im
}
