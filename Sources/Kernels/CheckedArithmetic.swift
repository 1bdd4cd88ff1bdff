/// Overflow-checked size arithmetic: every size Kernels derives goes through these, so a
/// product too large for `Int` (or for OpenBLAS's 32-bit indices) becomes a thrown
/// ``KernelError`` instead of a trap or a wrapped, too-small allocation.
enum CheckedArithmetic {
    /// The product of `factors`, or an error naming `argument` if it overflows `Int`.
    static func product(_ factors: Int..., argument: String, describing what: String) throws -> Int {
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow else {
                throw KernelError(argument: argument, reason: "\(what) (\(factors.map(String.init).joined(separator: " × "))) overflows Int")
            }
            result = next
        }
        return result
    }

    /// Whether the product of `factors` fits `Int` and is at most `limit`: for choosing an
    /// algorithm, where a size past the limit means another algorithm, not an error.
    static func product(_ factors: Int..., isAtMost limit: Int) -> Bool {
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow, next <= limit else { return false }
            result = next
        }
        return true
    }

    /// Largest copy of one image (64 MiB of floats) the direct and product kernels make: far
    /// above any real layer's; past it (padding far beyond the image) a layer stays on im2col.
    static let maximumImageCopyFloats = 1 << 24

    /// The sum of `terms`, or an error naming `argument` if it overflows `Int`.
    static func sum(_ terms: Int..., argument: String, describing what: String) throws -> Int {
        var result = 0
        for term in terms {
            let (next, overflow) = result.addingReportingOverflow(term)
            guard !overflow else {
                throw KernelError(argument: argument, reason: "\(what) (\(terms.map(String.init).joined(separator: " + "))) overflows Int")
            }
            result = next
        }
        return result
    }

    /// Throws unless `value` fits the 32-bit `blasint` of Debian's OpenBLAS build.
    static func requireBLASIndex(_ value: Int, argument: String, describing what: String) throws {
        guard value <= Int(Int32.max) else {
            throw KernelError(argument: argument, reason: "\(what) is \(value), above OpenBLAS's 32-bit index limit \(Int32.max)")
        }
    }
}
