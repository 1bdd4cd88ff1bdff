/// A table of strings printed with aligned columns, or as GitHub markdown for pasting into
/// a README.
struct TextTable {
    var title: String
    var headers: [String]
    /// Columns from this index on are numbers and right-aligned.
    var firstNumericColumn: Int
    var rows: [[String]] = []
    /// Lines printed under the table: what was skipped, how a column is defined.
    var notes: [String] = []

    init(title: String, headers: [String], firstNumericColumn: Int) {
        self.title = title
        self.headers = headers
        self.firstNumericColumn = firstNumericColumn
    }

    mutating func append(_ row: [String]) {
        rows.append(row)
    }

    func render(markdown: Bool) -> String {
        var lines = [title, ""]
        if markdown {
            lines.append("| " + headers.joined(separator: " | ") + " |")
            lines.append("|" + headers.indices.map { $0 < firstNumericColumn ? "---|" : "---:|" }.joined())
            lines += rows.map { "| " + $0.joined(separator: " | ") + " |" }
        } else {
            let widths = headers.indices.map { column in
                ([headers] + rows).map { column < $0.count ? $0[column].count : 0 }.max() ?? 0
            }
            func line(_ cells: [String]) -> String {
                cells.indices.map { column in
                    let padding = String(repeating: " ", count: widths[column] - cells[column].count)
                    return column < firstNumericColumn ? cells[column] + padding : padding + cells[column]
                }.joined(separator: "  ")
            }
            lines.append(line(headers))
            lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
            lines += rows.map(line)
        }
        if !notes.isEmpty {
            lines.append("")
            lines += notes
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
