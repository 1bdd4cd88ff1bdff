/// Somewhere to put one value of every result, so the optimizer cannot prove a timed call's
/// output unused and drop the call.
enum Sink {
    // Only the benchmark's single thread writes it; the value itself is never read.
    nonisolated(unsafe) private static var total: Float = 0

    @inline(never)
    static func consume(_ value: Float) {
        total += value
    }
}
