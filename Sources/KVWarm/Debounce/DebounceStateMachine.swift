/// Per-key debounce bookkeeping, free of clocks and tasks.
///
/// A key fires `quiet` after its last event, or `maxWait` after its first
/// pending event when events keep coming. An event that does not restart the
/// quiet period (a metadata-only change, see ``received(_:at:restartsQuiet:)``)
/// starts one when the key is idle and leaves a pending deadline alone.
/// Inputs return no side effects; the driver asks ``nextDeadline`` and calls
/// ``fire(now:)`` when it passes.
public struct DebounceStateMachine<Key: Hashable & Sendable, Instant: InstantProtocol>: Sendable
where Instant.Duration == Duration {
    struct Pending: Sendable {
        var first: Instant
        var last: Instant
    }

    public let quiet: Duration
    public let maxWait: Duration
    private var pending: [Key: Pending] = [:]
    /// Arrival order, so keys due at the same instant fire in the order they came.
    private var order: [Key] = []

    public init(quiet: Duration, maxWait: Duration) {
        self.quiet = quiet
        self.maxWait = max(maxWait, quiet)
    }

    /// Whether nothing is pending.
    public var isIdle: Bool { pending.isEmpty }

    /// Records an event for `key` at `now`. With `restartsQuiet` false the event only matters when
    /// nothing is pending for `key`: vim's save ends with an attribute change after the close-write,
    /// and that should not push the warm of the content it just wrote back by a whole quiet period.
    public mutating func received(_ key: Key, at now: Instant, restartsQuiet: Bool = true) {
        if var p = pending[key] {
            guard restartsQuiet else { return }
            p.last = now
            pending[key] = p
        } else {
            pending[key] = Pending(first: now, last: now)
            order.append(key)
        }
    }

    private func deadline(_ p: Pending) -> Instant {
        let q = p.last.advanced(by: quiet)
        let m = p.first.advanced(by: maxWait)
        return q < m ? q : m
    }

    /// The earliest instant at which some key is due.
    public var nextDeadline: Instant? {
        pending.values.map(deadline).min()
    }

    /// Removes and returns the keys due at `now`, in arrival order.
    public mutating func fire(now: Instant) -> [Key] {
        var due: [Key] = []
        for k in order where pending[k].map({ deadline($0) <= now }) == true {
            due.append(k)
        }
        for k in due { pending[k] = nil }
        order.removeAll { pending[$0] == nil }
        return due
    }

    /// Removes and returns everything pending (used when the input ends).
    public mutating func flush() -> [Key] {
        let all = order
        pending = [:]
        order = []
        return all
    }
}
