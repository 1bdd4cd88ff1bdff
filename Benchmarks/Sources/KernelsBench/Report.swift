import Foundation

/// Where results go: aligned tables (or markdown) on stdout, or one JSON object per line with
/// `--json`; progress goes to stderr either way, so stdout stays clean for piping.
final class Report {
    enum Style {
        case table, markdown, json
    }

    let style: Style
    let showsProgress: Bool
    private let started = ContinuousClock.now
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    init(style: Style, showsProgress: Bool) {
        self.style = style
        self.showsProgress = showsProgress
    }

    /// Prints a measurement at once in JSON mode; tables print it with their section.
    func record(_ measurement: Measurement) {
        if style == .json { emitJSON(measurement) }
    }

    func emitJSON(_ value: some Encodable) {
        guard let data = try? encoder.encode(value), let line = String(data: data, encoding: .utf8) else { return }
        print(line)
    }

    func table(_ table: TextTable) {
        guard style != .json, !table.rows.isEmpty else { return }
        print(table.render(markdown: style == .markdown))
    }

    /// Free text for the human reader (machine header, conclusions); nothing in JSON mode.
    func text(_ text: String) {
        guard style != .json else { return }
        print(text)
    }

    /// `[  12.3 s] message` on stderr.
    func progress(_ message: String) {
        guard showsProgress else { return }
        let elapsed = (ContinuousClock.now - started).seconds
        let stamp = Format.fixed(elapsed, decimals: 1)
        let line = "[" + String(repeating: " ", count: max(0, 6 - stamp.count)) + stamp + " s] " + message + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
