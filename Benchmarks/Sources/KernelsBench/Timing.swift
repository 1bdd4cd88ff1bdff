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

    /// Runs `body` per the policy and returns the statistics of the timed runs.
    func measure(_ body: () throws -> Void) rethrows -> Timing {
        let clock = ContinuousClock()
        let warmUpStart = clock.now
        repeat {
            try body()
        } while (clock.now - warmUpStart).seconds < warmUpSeconds

        var samples: [Double] = []
        var spent = 0.0
        while samples.count < maximumRuns && (samples.count < minimumRuns || spent < budgetSeconds) {
            let elapsed = try clock.measure(body).seconds
            samples.append(elapsed)
            spent += elapsed
        }
        return Timing(samples: samples)
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
