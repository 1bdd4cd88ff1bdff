/// How long to warm up and how many repeated runs to take of each measured call.
///
/// Every figure the harness prints is a median, because the machine is shared and a single
/// run can be slowed by a neighbour; the minimum is kept alongside it in `--json`.
struct TimingPolicy: Sendable {
    /// Warm-up continues until this much time has passed (and at least one call was made), so
    /// caches, page tables and OpenBLAS's thread pool are in their steady state.
    var warmUpSeconds: Double
    /// Timed runs continue until this much time has passed...
    var budgetSeconds: Double
    /// ...and at least this many runs were taken, however slow each is...
    var minimumRuns: Int
    /// ...but never more than this many.
    var maximumRuns: Int

    static func full(budgetSeconds: Double) -> TimingPolicy {
        TimingPolicy(warmUpSeconds: 0.05, budgetSeconds: budgetSeconds, minimumRuns: 5, maximumRuns: 200)
    }

    /// Enough to prove every path runs, not to measure anything.
    static let quick = TimingPolicy(warmUpSeconds: 0, budgetSeconds: 0.01, minimumRuns: 2, maximumRuns: 5)

    /// Times calls that will be compared with each other, in rounds of one run of
    /// each, so that a neighbour's build starting or stopping slows all of them alike instead
    /// of whichever happened to run at that moment. The budget and run counts apply to each.
    /// `prepare(i)` runs untimed before every call of `bodies[i]` (to set a thread count).
    func measureInterleaved<E: Error>(_ bodies: [() throws(E) -> Void],
                                      prepare: (Int) -> Void = { _ in }) throws(E) -> [Timing] {
        let clock = ContinuousClock()
        let warmUpStart = clock.now
        repeat {
            for (index, body) in bodies.enumerated() {
                prepare(index)
                try body()
            }
        } while (clock.now - warmUpStart).seconds < warmUpSeconds * Double(bodies.count)

        var samples = [[Double]](repeating: [], count: bodies.count)
        var spent = 0.0
        var rounds = 0
        while rounds < maximumRuns && (rounds < minimumRuns || spent < budgetSeconds * Double(bodies.count)) {
            for (index, body) in bodies.enumerated() {
                prepare(index)
                let start = clock.now
                try body()
                let elapsed = (clock.now - start).seconds
                samples[index].append(elapsed)
                spent += elapsed
            }
            rounds += 1
        }
        return samples.map(Timing.init(samples:))
    }
}

extension TimingPolicy {
    /// Times calls one after another, each in its own block (warm-up, then its runs back to
    /// back), for calls whose speed depends on what ran just before them: a Kernels pass timed
    /// right after a two-thread cblas_sgemm starts while OpenBLAS's worker is still spinning,
    /// which a loop of Kernels calls never sees.
    func measureInBlocks<E: Error>(_ bodies: [() throws(E) -> Void]) throws(E) -> [Timing] {
        var timings: [Timing] = []
        for body in bodies { timings += try measureInterleaved([body]) }
        return timings
    }
}

/// The run times of one measured call.
struct Timing: Sendable {
    let samples: [Double]

    var runs: Int { samples.count }

    /// The median in seconds (the mean of the middle two for an even count).
    var median: Double {
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    var minimum: Double { samples.min() ?? .nan }

    var medianMilliseconds: Double { median * 1e3 }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
