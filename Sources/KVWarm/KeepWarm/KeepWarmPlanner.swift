/// Decides from each `GET /slots` which templates to put back, and where, after requests took
/// them or the server dropped them.
///
/// Two ways, by what the server does with idle slots:
///
/// - **Slots keep their KV** (`-np N`, `--no-cache-idle-slots`): the planner remembers the slot
///   of each template (from a warm or its own restore) and what that slot showed. A template is
///   *displaced* when its slot is processing, its task id changed (a request ran there) or its
///   token count changed. Displaced and unplaced templates are restored (``Action/restore``),
///   shortest first, into idle slots holding no tokens and no other template, in slot id
///   order: of two nested prefixes the shorter gets the lower id and wins the server's
///   similarity tie. A busy slot, or one holding tokens, is never picked.
/// - **The server clears idle slots** at every task launch (its defaults,
///   tools/server/server-context.cpp:2641-2657): a template in a slot would be chosen by
///   similarity over a conversation's own KV in the RAM cache and cut that conversation back to
///   the template, so templates are kept in the RAM cache instead (``Action/publish``): as the
///   template plus an end-of-sequence token, which no request continues, so the cache never
///   counts it as contained in or made obsolete by a conversation, and a conversation's own
///   entry always beats it (server-task.cpp:1722-1877). Such an entry leaves the cache only when
///   a request loads it; a request that did shows, while it runs, `n_prompt_tokens_cache` equal
///   to the template's length, and that template is published again. A task that started and
///   ended between two reads could have loaded any of them: all are published again.
///
/// Every restore or publish is within the template's ``RestoreBudget``. Pure: ``observe`` returns
/// ``Action``s; the caller performs them and reports each with ``restoreEnded`` or
/// ``publishEnded``, and the slots right after its own requests with ``ownRequestsDone``.
public struct KeepWarmPlanner: Sendable {
    /// A template that can be put back: its KV file is valid on the current backend.
    public struct Candidate: Sendable, Equatable {
        public var name: String
        public var kvFile: String
        /// Tokens in the KV file.
        public var tokens: Int

        public init(name: String, kvFile: String, tokens: Int) {
            self.name = name
            self.kvFile = kvFile
            self.tokens = tokens
        }
    }

    public enum Action: Sendable, Equatable {
        /// Restore `kvFile` into `slot` (slots keep their KV).
        case restore(template: String, slot: Int, kvFile: String)
        /// Restore `kvFile` into idle `slot`, extend it by the sentinel and make the server move it
        /// to its RAM cache (the server clears idle slots). `prompt` is the warm prompt.
        case publish(template: String, slot: Int, kvFile: String, prompt: String, tokens: Int)
        /// `template` had `perMinute` restores in the last minute: it waits (reported once per episode).
        case budgetSpent(template: String, perMinute: Int)
        /// No idle empty slot is left for these templates (reported once per episode).
        case noRoom(templates: [String])
        /// An idle slot holding `template` was emptied without a request running on it: the
        /// server clears idle slots (reported once).
        case slotCleared(template: String, slot: Int)
    }

    struct Placement: Sendable, Equatable {
        var slot: Int
        var tokens: Int
        /// The slot's task id when the placement was confirmed.
        var idTask: Int?
        var confirmed: Bool
        /// A restore into `slot` has been handed out and not reported yet.
        var restoring: Bool
    }

    /// How far a slot's token count may be above the placed count and still be the same KV
    /// (a warm's probe leaves its sampled token in the slot); also the most tokens an idle slot
    /// may hold and still count as empty.
    static let tokenSlack = 4
    /// How long after the slots last changed the daemon counts as seeing traffic.
    public static let activeFor: Duration = .seconds(60)

    private(set) var placements: [String: Placement] = [:]
    /// The warm prompt of each template, from its last warm.
    private var prompts: [String: String] = [:]
    /// Whether the planner last worked for a server that clears idle slots.
    private var clearing = false
    /// Templates believed to be in the server's RAM cache (clearing servers).
    private(set) var cached: Set<String> = []
    private var publishing: Set<String> = []
    /// Slot id → the id of the task last seen running there.
    private var running: [Int: Int] = [:]
    /// Slot id → the running task whose reuse was already looked at.
    private var judged: [Int: Int] = [:]
    private var budgets: [String: RestoreBudget] = [:]
    private var budgetReported: Set<String> = []
    private var noRoomReported = false
    private var clearedReported = false
    private var previous: [LlamaClient.SlotInfo]?
    public private(set) var lastActivity: ContinuousClock.Instant?
    /// Restores (and publishes) and their server milliseconds since the last ``takeSummary()``.
    public private(set) var restores = 0
    public private(set) var restoreMS = 0.0

    public init() {}

    /// Whether the slots changed within ``activeFor`` before `now`.
    public func active(at now: ContinuousClock.Instant) -> Bool {
        guard let lastActivity else { return false }
        return lastActivity.duration(to: now) < Self.activeFor
    }

    /// Records that a warm put `template` (`tokens` long, warm prompt `prompt`) into `slot`.
    public mutating func placed(_ template: String, slot: Int, tokens: Int, prompt: String? = nil) {
        for (name, p) in placements where p.slot == slot { placements[name] = nil }
        placements[template] = Placement(slot: slot, tokens: tokens, idTask: nil, confirmed: false, restoring: false)
        if let prompt { prompts[template] = prompt }
        // a new warm is a new KV file: its RAM copy (if any) is of the old one
        cached.remove(template)
    }

    /// Forgets where templates are (the server restarted or went away: its slots and cache are empty).
    public mutating func reset() {
        placements = [:]
        cached = []
        running = [:]
        judged = [:]
        previous = nil
        noRoomReported = false
    }

    /// The slot of `template`'s current placement, if any.
    public func slot(of template: String) -> Int? { placements[template]?.slot }

    /// One `GET /slots` answer. `clearing`: the server clears idle slots; `sentinel`: whether the
    /// model's end-of-sequence text is known (without it templates stay in slots).
    public mutating func observe(_ slots: [LlamaClient.SlotInfo], candidates: [Candidate], perMinute: Int,
                                 now: ContinuousClock.Instant, mayRestore: Bool, clearing: Bool = false,
                                 sentinel: Bool = true) -> [Action] {
        if slots.contains(where: \.isProcessing) || (previous != nil && previous != slots) { lastActivity = now }
        let ram = clearing && sentinel
        if ram != self.clearing {
            self.clearing = ram
            placements = [:]
            cached = []
        }
        var actions = ram ? trackCache(slots, candidates: candidates, own: nil) : trackSlots(slots, candidates: candidates)
        previous = slots
        let wanted = candidates.filter {
            ram ? !cached.contains($0.name) && !publishing.contains($0.name) && prompts[$0.name] != nil
                : placements[$0.name] == nil
        }.sorted { ($0.tokens, $0.name) < ($1.tokens, $1.name) }
        if wanted.isEmpty { noRoomReported = false }
        guard mayRestore, perMinute > 0, !wanted.isEmpty else { return actions }
        let held = Set(placements.values.map(\.slot))
        var empty = slots.filter { !$0.isProcessing && ($0.promptTokens ?? 0) <= Self.tokenSlack && !held.contains($0.id) }
            .map(\.id).sorted()
        var left: [String] = []
        for c in wanted {
            guard let slot = empty.first else { left.append(c.name); continue }
            guard budgets[c.name, default: RestoreBudget()].take(at: now, perMinute: perMinute) else {
                if budgetReported.insert(c.name).inserted {
                    actions.append(.budgetSpent(template: c.name, perMinute: perMinute))
                }
                continue
            }
            budgetReported.remove(c.name)
            if ram {
                // one slot serves every publish: each leaves it holding only the publishing request
                publishing.insert(c.name)
                actions.append(.publish(template: c.name, slot: slot, kvFile: c.kvFile, prompt: prompts[c.name]!,
                                        tokens: c.tokens))
            } else {
                empty.removeFirst()
                placements[c.name] = Placement(slot: slot, tokens: c.tokens, idTask: nil, confirmed: false,
                                               restoring: true)
                actions.append(.restore(template: c.name, slot: slot, kvFile: c.kvFile))
            }
        }
        if left.isEmpty {
            noRoomReported = false
        } else if !noRoomReported {
            noRoomReported = true
            actions.append(.noRoom(templates: left))
        }
        return actions
    }

    /// Slots keep their KV: drops the placements whose slot changed.
    private mutating func trackSlots(_ slots: [LlamaClient.SlotInfo], candidates: [Candidate]) -> [Action] {
        var actions: [Action] = []
        let byID = Dictionary(slots.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(candidates.map(\.name))
        for (name, p) in placements {
            guard names.contains(name) else { placements[name] = nil; continue }
            if p.restoring { continue }
            guard let s = byID[p.slot], !s.isProcessing else { placements[name] = nil; continue }
            if !p.confirmed {
                if let n = s.promptTokens, !(p.tokens...(p.tokens + Self.tokenSlack)).contains(n) {
                    placements[name] = nil
                } else {
                    placements[name] = Placement(slot: p.slot, tokens: s.promptTokens ?? p.tokens, idTask: s.idTask,
                                                 confirmed: true, restoring: false)
                }
                continue
            }
            if s.idTask != p.idTask { placements[name] = nil; continue }
            if let n = s.promptTokens, n != p.tokens {
                placements[name] = nil
                if n == 0, !clearedReported {
                    clearedReported = true
                    actions.append(.slotCleared(template: name, slot: p.slot))
                }
            }
        }
        return actions
    }

    /// The server clears idle slots: drops from ``cached`` the templates a request may have loaded.
    /// Task id changes on `own` (the slot of kvwarm's own requests) are not requests of others.
    private mutating func trackCache(_ slots: [LlamaClient.SlotInfo], candidates: [Candidate], own: Int?) -> [Action] {
        let before = Dictionary((previous ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for s in slots where s.id != own {
            if s.isProcessing, let task = s.idTask {
                running[s.id] = task
                // a request that loaded template+sentinel reused exactly the template's tokens; its
                // reuse shows once its prompt is being processed, and counts once per task
                if let c = s.cachedTokens, c > 0, judged[s.id] != task {
                    judged[s.id] = task
                    for t in candidates where (t.tokens - 2...t.tokens).contains(c) { cached.remove(t.name) }
                }
            } else if let prev = before[s.id], s.idTask != prev.idTask {
                // a task ran here since the last read; if it was never seen running, it may have loaded any
                if running[s.id] != s.idTask { cached = [] }
                running[s.id] = nil
            }
        }
        return []
    }

    /// The slots right after kvwarm's own requests on slot `own` (clearing servers): they become
    /// the baseline, so those requests do not count as others'.
    public mutating func ownRequestsDone(_ slots: [LlamaClient.SlotInfo], own: Int, candidates: [Candidate]) {
        _ = trackCache(slots, candidates: candidates, own: own)
        previous = slots
    }

    /// The restore of `template` into `slot` answered with `restoredTokens` (nil: it failed).
    public mutating func restoreEnded(_ template: String, slot: Int, restoredTokens: Int?, restoreMS: Double = 0) {
        guard let p = placements[template], p.slot == slot, p.restoring else { return }
        guard let n = restoredTokens else { placements[template] = nil; return }
        placements[template] = Placement(slot: slot, tokens: n, idTask: nil, confirmed: false, restoring: false)
        restores += 1
        self.restoreMS += restoreMS
    }

    /// The publish of `template` ended; `ok` when the server reused the restored KV for it.
    public mutating func publishEnded(_ template: String, ok: Bool, serverMS: Double = 0) {
        guard publishing.remove(template) != nil else { return }
        if ok { cached.insert(template) }
        restores += 1
        restoreMS += serverMS
    }

    /// The restores counted since the last call, and resets the count.
    public mutating func takeSummary() -> (restores: Int, restoreMS: Double) {
        defer { restores = 0; restoreMS = 0 }
        return (restores, restoreMS)
    }
}
