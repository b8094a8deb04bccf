/// The warm queue as a state machine: which template's pass runs next, which wait for a
/// retry, and when the queue has drained. It performs nothing itself; every call returns
/// the ``Action``s its owner carries out.
///
/// - One pass runs at a time (llama-server shares its cores between slots, so parallel
///   prefills only slow each other down).
/// - A template is queued at most once; one that changes while its pass is in flight is
///   queued once more, so the latest content wins and at most one follow-up runs.
/// - A pass that ended in a backend failure (any ``BackendError`` but cancellation, a
///   rejected API key included) is retried after ``Backoff/delay(attempt:random:)``; a
///   success resets the attempt count. A template failure waits for the file to change.
public struct WarmQueue: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Run the pass of this template.
        case startPass(String)
        /// Call ``retryFired(_:)`` for this template after the delay.
        case scheduleRetry(String, after: Duration, attempt: Int)
        /// Drop the pending retry timer of this template.
        case cancelRetry(String)
        /// Cancel the pass in flight.
        case cancelInFlight
        /// Nothing is queued or in flight: write the state and wake whoever waits for that.
        case drained
    }

    public let backoff: Backoff
    public private(set) var queue: [String] = []
    public private(set) var inFlight: String?
    /// Passes ended so far.
    public private(set) var completed = 0
    /// Whether passes may start (between ``start()`` and ``stop()``).
    public private(set) var running = false
    public private(set) var stopped = false
    private var attempts: [String: Int] = [:]
    private var retrying: Set<String> = []

    public init(backoff: Backoff = Backoff()) { self.backoff = backoff }

    /// Nothing queued and nothing in flight.
    public var isIdle: Bool { queue.isEmpty && inFlight == nil }

    /// Whether a retry timer is pending for `name`.
    public func isRetrying(_ name: String) -> Bool { retrying.contains(name) }

    /// Lets passes start.
    public mutating func start() -> [Action] {
        guard !stopped else { return [] }
        running = true
        return next()
    }

    /// Stops starting passes; the one in flight is cancelled and every retry dropped.
    public mutating func stop() -> [Action] {
        running = false
        stopped = true
        var actions = retrying.sorted().map(Action.cancelRetry)
        retrying = []
        queue = []
        if inFlight != nil { actions.append(.cancelInFlight) }
        return actions
    }

    /// Queues `names` (each once); a pending retry of a queued template is dropped.
    public mutating func enqueue(_ names: some Sequence<String>) -> [Action] {
        guard !stopped else { return [] }
        var actions: [Action] = []
        for n in names where !queue.contains(n) {
            queue.append(n)
            if retrying.remove(n) != nil { actions.append(.cancelRetry(n)) }
        }
        return actions + next()
    }

    /// The pass of `name` ended with `result`; `random` in 0...1 draws the retry's jitter.
    public mutating func passEnded(_ name: String, _ result: PassResult, random: Double) -> [Action] {
        inFlight = nil
        completed += 1
        var actions: [Action] = []
        switch result {
        case .warmed:
            attempts[name] = 0
        case .templateFailed, .removed, .backendFailed(.cancelled):
            break
        case .backendFailed:
            if !stopped && !queue.contains(name) {
                let n = attempts[name, default: 0]
                attempts[name] = n + 1
                retrying.insert(name)
                actions.append(.scheduleRetry(name, after: backoff.delay(attempt: n, random: random), attempt: n + 1))
            }
        }
        return actions + next()
    }

    /// A retry timer of `name` fired.
    public mutating func retryFired(_ name: String) -> [Action] {
        guard retrying.remove(name) != nil else { return [] }
        return enqueue([name])
    }

    /// Forgets `names` (no longer configured): unqueued, retries dropped, the pass in flight cancelled.
    public mutating func remove(_ names: Set<String>) -> [Action] {
        var actions: [Action] = []
        for n in names.sorted() where retrying.remove(n) != nil { actions.append(.cancelRetry(n)) }
        for n in names { attempts[n] = nil }
        queue.removeAll { names.contains($0) }
        if let f = inFlight, names.contains(f) { actions.append(.cancelInFlight) }
        return actions
    }

    private mutating func next() -> [Action] {
        guard inFlight == nil else { return [] }
        guard running, !queue.isEmpty else { return running && queue.isEmpty ? [.drained] : [] }
        let n = queue.removeFirst()
        inFlight = n
        return [.startPass(n)]
    }
}
