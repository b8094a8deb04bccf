/// The backend monitor's decisions as a state machine: fed what each check saw, it says
/// what to do next and remembers what it needs across checks (down or up, what was already
/// reported, the slots' highest task id, when the full fingerprint was last read).
///
/// One check: ``probed(_:known:now:fingerprintInterval:)`` on the `GET /slots` answer; on
/// ``AfterProbe/readFingerprint(restarted:)``, ``read(_:current:)`` on the fingerprint read;
/// on ``Verdict/confirm(_:)``, ``confirmed(_:again:)`` on a second read; on
/// ``Verdict/record(_:)``, ``recorded(_:changed:restarted:previousBuild:)``.
public struct BackendCheck: Sendable, Equatable {
    /// What the one-request check saw.
    public enum Probe: Sendable, Equatable {
        /// The backend answered; `slots` is nil when it has no slots endpoint (`--no-slots`).
        case up(slots: [LlamaClient.SlotInfo]?)
        /// The backend is not usable now.
        case down(BackendError)
        /// The key was rejected: the warm path reports that, the monitor stays quiet.
        case unauthorized
        case cancelled
    }

    public enum AfterProbe: Sendable, Equatable {
        case stop
        /// Nothing more this check.
        case skip
        /// The backend just went away: forget its fingerprint and slots, and say so.
        case wentDown(BackendError)
        /// Read the full fingerprint; `restarted` when the check already shows a new server process.
        case readFingerprint(restarted: Bool)
    }

    public enum Verdict: Sendable, Equatable {
        case stop
        case skip
        /// The read failed; say so (once per episode).
        case readFailed(BackendError)
        /// The fingerprint differs from the current one: read it once more to confirm.
        case confirm(BackendFingerprint)
        /// Two reads in a row differ; say so (once per episode) and keep the current one.
        case unstable
        /// Record this fingerprint with the backend identity.
        case record(BackendFingerprint)
    }

    public enum Rewarm: Sendable, Equatable {
        case none
        /// Re-warm every template; `resetSlots` when the server restarted.
        case all(reason: String, resetSlots: Bool)
    }

    public private(set) var down: Bool
    /// Whether the episode of being down was reported as a router model not loaded.
    private var downUnloaded = false
    private var fingerprintFailing = false
    private var unstableReported = false
    private var counter = TaskCounter()
    private var lastFullRead: ContinuousClock.Instant?

    /// `down` starts true when nothing has been warmed yet, so the first healthy check re-warms.
    /// `unloaded` when startup already found (and said) that the router model is not loaded,
    /// so the first probe does not say it again.
    public init(down: Bool, unloaded: Bool = false) {
        self.down = down || unloaded
        downUnloaded = unloaded
    }

    /// How often a backend that is down is probed: its return is noticed within this, and the
    /// re-warm starts at once, however long `backend.check_interval_seconds` is.
    public static let downInterval: Duration = .seconds(1)

    /// How long to wait before the next check: `configured` while the backend is up (at most
    /// `active` while requests are coming in), at most ``downInterval`` while it is down (one
    /// failed connect or a 503 per probe).
    public func nextInterval(configured: Duration, active: Duration? = nil) -> Duration {
        if down { return min(configured, Self.downInterval) }
        return active.map { min(configured, $0) } ?? configured
    }

    public mutating func probed(_ probe: Probe, known: BackendFingerprint?, now: ContinuousClock.Instant,
                                fingerprintInterval: Duration) -> AfterProbe {
        var restarted = down
        var suspicious = down
        switch probe {
        case .cancelled:
            return .stop
        case .unauthorized:
            return .skip
        case .down(let error):
            // a router model found unloaded after its child failed otherwise while stopping
            // (a 500 "proxy error") is reported again, as unloaded
            let nowUnloaded = if case .modelUnloaded = error { !downUnloaded } else { false }
            guard !down || nowUnloaded else { return .skip }
            down = true
            downUnloaded = nowUnloaded || downUnloaded
            return .wentDown(error)
        case .up(let slots):
            if let slots {
                if counter.observe(slots) { restarted = true; suspicious = true }
                if let known, Self.shapeDiffers(slots, from: known) { suspicious = true }
            } else {
                suspicious = true
            }
        }
        if let last = lastFullRead, last.duration(to: now) < fingerprintInterval, !suspicious, known != nil {
            return .skip
        }
        lastFullRead = now
        return .readFingerprint(restarted: restarted)
    }

    public mutating func read(_ result: Result<BackendFingerprint, BackendError>,
                              current: BackendFingerprint?) -> Verdict {
        switch result {
        case .failure(.cancelled):
            return .stop
        case .failure(let error):
            lastFullRead = nil  // read it again at the next check
            // 401: the warm path reports credential problems; anything else is said once per episode
            guard error != .unauthorized, !fingerprintFailing else { return .skip }
            fingerprintFailing = true
            return .readFailed(error)
        case .success(let fp):
            fingerprintFailing = false
            // a change must read the same twice: a fingerprint that differs between two calls
            // would otherwise re-prefill every template at every check
            if let current, !fp.differences(from: current).isEmpty { return .confirm(fp) }
            unstableReported = false
            return .record(fp)
        }
    }

    public mutating func confirmed(_ first: BackendFingerprint, again: BackendFingerprint?) -> Verdict {
        guard let again, again.differences(from: first).isEmpty else {
            guard !unstableReported else { return .skip }
            unstableReported = true
            return .unstable
        }
        unstableReported = false
        return .record(first)
    }

    /// The identity recorded `fp`; `changed` when its digest differs from the one before.
    public mutating func recorded(_ fp: BackendFingerprint, changed: Bool, restarted: Bool,
                                  previousBuild: String?) -> Rewarm {
        var restarted = restarted
        if let before = previousBuild, before != fp.build { restarted = true }
        guard restarted || changed else { return .none }
        down = false
        downUnloaded = false
        return .all(reason: changed ? "fingerprint_changed" : "restarted", resetSlots: restarted)
    }

    /// Whether `slots` describe another layout than `fp` (slot count or per-slot context).
    static func shapeDiffers(_ slots: [LlamaClient.SlotInfo], from fp: BackendFingerprint) -> Bool {
        if slots.count != fp.totalSlots { return true }
        return slots.contains { $0.nCtx != 0 && fp.nCtx != 0 && $0.nCtx != fp.nCtx }
    }
}

/// Restart detection from the slots' task ids.
public struct TaskCounter: Sendable, Equatable {
    public private(set) var highest: Int?

    public init() {}

    /// Feeds one `GET /slots`; true when the ids went backwards (a new server process).
    public mutating func observe(_ slots: [LlamaClient.SlotInfo]) -> Bool {
        let now = slots.compactMap(\.idTask).max()
        defer { highest = now }
        guard let before = highest else { return false }
        guard let now else { return true }
        return now < before
    }
}
