import Synchronization

/// Chooses the llama-server slot a warm goes to.
///
/// Only a slot that `GET /slots` shows idle is pinned: the server defers work
/// pinned to a busy slot and can overwrite a running request's KV. Among idle
/// slots an empty one wins, then the one kvwarm used least recently, so a warm
/// never lands on the slot that holds the template warmed a moment before.
public final class SlotScheduler: Sendable {
    private let recent = Mutex<[Int]>([])

    public init() {}

    /// Records that `slot` now holds a warm.
    public func used(_ slot: Int) {
        recent.withLock { r in
            r.removeAll { $0 == slot }
            r.append(slot)
        }
    }

    /// The best idle slot in `slots`, or nil when all are busy.
    public func choose(from slots: [LlamaClient.SlotInfo]) -> Int? {
        let order = recent.withLock { $0 }
        let idle = slots.filter { !$0.isProcessing }
        return idle.min { a, b in
            let ea = (a.promptTokens ?? 0) == 0, eb = (b.promptTokens ?? 0) == 0
            if ea != eb { return ea }
            // never used by kvwarm (-1) before least recently used
            let ra = order.firstIndex(of: a.id) ?? -1, rb = order.firstIndex(of: b.id) ?? -1
            if ra != rb { return ra < rb }
            return a.id < b.id
        }?.id
    }
}
