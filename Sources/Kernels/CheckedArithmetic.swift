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
