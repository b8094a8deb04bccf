/// Capped exponential backoff with equal jitter, per template.
///
/// The delay before retry n (0-based) is uniform in [d/2, d] with
/// d = min(base·2ⁿ, cap), the exponent clamped at 20. With the defaults a
/// template that keeps failing waits 15 to 30 s between attempts once the cap
/// is reached.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(30)) {
        self.base = base
        self.cap = cap
    }

    /// The delay before retry `attempt` (0 for the first retry), with `random` in 0...1.
    public func delay(attempt: Int, random: Double) -> Duration {
        let exp = min(attempt, 20)
        let raw = base * (1 << exp)
        let capped = raw > cap ? cap : raw
        let fraction = 0.5 + 0.5 * min(max(random, 0), 1)
        return capped * fraction
    }
}
