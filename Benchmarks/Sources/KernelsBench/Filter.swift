/// `--filter` patterns: a benchmark row runs when its id `section/name` (for example
/// `gemm/square-1024`, `conv/resnet-c2`, `col2im/cifar-64`) contains any pattern, ignoring
/// case. No pattern runs everything.
struct Filter: Sendable {
    let patterns: [String]

    init(_ patterns: [String]) {
        self.patterns = patterns.map { $0.lowercased() }
    }

    func includes(section: String, name: String) -> Bool {
        guard !patterns.isEmpty else { return true }
        let id = "\(section)/\(name)".lowercased()
        return patterns.contains { id.contains($0) }
    }
}
