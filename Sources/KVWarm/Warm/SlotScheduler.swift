import Synchronization

/// Chooses the llama-server slot a warm goes to.
///
/// Only a slot that `GET /slots` shows idle is pinned: the server defers work
/// pinned to a busy slot and can overwrite a running request's KV. Among idle
/// slots, the one that last held this template wins (an edit re-uses the
/// unchanged part of its prompt), then an empty one, then the one kvwarm used
/// least recently — so a warm never lands on the slot that holds another
/// template warmed a moment before.
public final class SlotScheduler: Sendable {
    private struct State {
        var order: [Int] = []
        var holder: [Int: String] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Records that `slot` now holds `template`.
    public func used(_ slot: Int, by template: String) {
        state.withLock { s in
            s.order.removeAll { $0 == slot }
            s.order.append(slot)
            for (k, v) in s.holder where v == template { s.holder[k] = nil }
            s.holder[slot] = template
        }
    }

    /// Forgets every assignment (the backend restarted: its slots are empty).
    public func reset() { state.withLock { $0 = State() } }

    /// The best idle slot in `slots` for `template`, or nil when all are busy.
    public func choose(for template: String, from slots: [LlamaClient.SlotInfo]) -> Int? {
        let s = state.withLock { $0 }
        let idle = slots.filter { !$0.isProcessing }
        if let own = idle.first(where: { s.holder[$0.id] == template }) { return own.id }
        return idle.min { a, b in
            let ea = (a.promptTokens ?? 0) == 0, eb = (b.promptTokens ?? 0) == 0
            if ea != eb { return ea }
            // never used by kvwarm (-1) before least recently used
            let ra = s.order.firstIndex(of: a.id) ?? -1, rb = s.order.firstIndex(of: b.id) ?? -1
            if ra != rb { return ra < rb }
            return a.id < b.id
        }?.id
    }
}
