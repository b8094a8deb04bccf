/// At most `perMinute` restores in any 60 s: the instants of the restores granted in the last minute.
public struct RestoreBudget: Sendable, Equatable {
    private var granted: [ContinuousClock.Instant] = []

    public init() {}

    /// Grants one restore at `now` when fewer than `perMinute` were granted in the 60 s before it.
    public mutating func take(at now: ContinuousClock.Instant, perMinute: Int) -> Bool {
        granted.removeAll { $0.duration(to: now) >= .seconds(60) }
        guard granted.count < perMinute else { return false }
        granted.append(now)
        return true
    }
}
