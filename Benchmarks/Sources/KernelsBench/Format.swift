/// Number formats shared by every table.
enum Format {
    /// Three significant figures or so: `0.0123`, `1.23`, `12.3`, `123`, `1234`.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        let magnitude = abs(value)
        let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : magnitude >= 0.1 ? 3 : 4
        return fixed(value, decimals: decimals)
    }

    static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return "—" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        let whole = Int(rounded / scale)
        let fraction = Int(rounded - Double(whole) * scale)
        let sign = value < 0 && rounded != 0 ? "-" : ""
        guard decimals > 0 else { return sign + String(whole) }
        let digits = String(fraction)
        return sign + String(whole) + "." + String(repeating: "0", count: decimals - digits.count) + digits
    }

    static func ratio(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        return number(value) + "×"
    }

    static func percent(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        return fixed(value, decimals: 0) + "%"
    }

    static func bytes(_ count: Int) -> String {
        if count == 0 { return "0" }
        let value = Double(count)
        if count >= 1 << 20 { return number(value / 1_048_576) + " MiB" }
        if count >= 1 << 10 { return number(value / 1024) + " KiB" }
        return "\(count) B"
    }
}
