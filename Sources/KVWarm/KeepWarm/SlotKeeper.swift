import Synchronization

/// The one owner of the ``KeepWarmPlanner`` of a backend: warms report placements to it from
/// the coordinator, the backend monitor feeds it the slots and carries out its actions.
public final class SlotKeeper: Sendable {
    private struct State {
        var planner = KeepWarmPlanner()
        var summarySince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    /// How often, at most, the restores done meanwhile are summed up in one log record.
    public static let summaryEvery: Duration = .seconds(600)

    public init() {}

    /// Records that a warm put `template` (`tokens` long, warm prompt `prompt`) into `slot`.
    public func placed(_ template: String, slot: Int, tokens: Int, prompt: String? = nil) {
        state.withLock { $0.planner.placed(template, slot: slot, tokens: tokens, prompt: prompt) }
    }

    /// Forgets every placement (the server restarted or went away).
    public func reset() { state.withLock { $0.planner.reset() } }

    /// Whether requests have been coming in lately (the monitor then reads the slots more often).
    public func active(at now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { $0.planner.active(at: now) }
    }

    /// The planner's actions for one `GET /slots` answer.
    public func observe(_ slots: [LlamaClient.SlotInfo], candidates: [KeepWarmPlanner.Candidate], perMinute: Int,
                        now: ContinuousClock.Instant = .now, mayRestore: Bool, clearing: Bool,
                        sentinel: Bool) -> [KeepWarmPlanner.Action] {
        state.withLock {
            $0.planner.observe(slots, candidates: candidates, perMinute: perMinute, now: now, mayRestore: mayRestore,
                               clearing: clearing, sentinel: sentinel)
        }
    }

    /// Reports how a publish handed out by ``observe(_:candidates:perMinute:now:mayRestore:clearing:sentinel:)`` ended.
    public func publishEnded(_ template: String, ok: Bool, serverMS: Double) {
        state.withLock { $0.planner.publishEnded(template, ok: ok, serverMS: serverMS) }
    }

    /// The slots read right after kvwarm's own requests on slot `own`.
    public func ownRequestsDone(_ slots: [LlamaClient.SlotInfo], own: Int, candidates: [KeepWarmPlanner.Candidate]) {
        state.withLock { $0.planner.ownRequestsDone(slots, own: own, candidates: candidates) }
    }

    /// Reports how a restore handed out by ``observe(_:candidates:perMinute:now:mayRestore:clearing:sentinel:)`` ended.
    public func restoreEnded(_ template: String, slot: Int, restoredTokens: Int?, restoreMS: Double = 0) {
        state.withLock {
            $0.planner.restoreEnded(template, slot: slot, restoredTokens: restoredTokens, restoreMS: restoreMS)
        }
    }

    /// The restores since the last summary when ``summaryEvery`` has passed and there were any.
    public func summaryDue(now: ContinuousClock.Instant = .now) -> (restores: Int, restoreMS: Double, over: Duration)? {
        state.withLock { s in
            guard let since = s.summarySince else { s.summarySince = now; return nil }
            let over = since.duration(to: now)
            guard over >= Self.summaryEvery else { return nil }
            s.summarySince = now
            let sum = s.planner.takeSummary()
            return sum.restores == 0 ? nil : (sum.restores, sum.restoreMS, over)
        }
    }
}
