/// The one error every Kernels entry point throws for an invalid argument.
///
/// Kernels validates every shape and parameter before it touches memory, so a thrown
/// `KernelError` means nothing was written. `argument` names the offending parameter
/// (`"stride"`, `"weight"`, `"indices"`, ...) so callers can react programmatically;
/// `reason` carries the numbers for humans.
///
/// ```swift
/// do { _ = try Conv2D(stride: 0).forward(x, weight: w) }
/// catch let error as KernelError { print(error.argument) }   // "stride"
/// ```
public struct KernelError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The name of the argument that was rejected, as spelled in the API.
    public let argument: String
    /// What was wrong, with the offending numbers.
    public let reason: String

    public init(argument: String, reason: String) {
        self.argument = argument
        self.reason = reason
    }

    public var description: String { "invalid argument '\(argument)': \(reason)" }
}

extension KernelError {
    /// Runs `body`, re-throwing a ``KernelError`` about argument `internalName` as one about
    /// `publicName`: shared validation says "input", while an entry point whose parameter is
    /// spelled `inputShape` must name that.
    static func renaming<Result>(_ internalName: String, to publicName: String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as KernelError where error.argument == internalName {
            throw KernelError(argument: publicName, reason: error.reason)
        }
    }
}
