/// Tells from `GET /slots` after the startup warm whether llama-server clears idle slots.
///
/// Under llama-server's defaults (`-np` auto: 4 slots with unified KV, `--cache-idle-slots`,
/// `--cache-ram` 8192 MiB) every task launch moves each idle slot's KV to the RAM prompt cache
/// and clears the slot (tools/server/server-context.cpp:2641-2657), so a template warmed into a
/// slot holds its place only until the next request of anyone. With an explicit `-np N` the
/// slots are only copied and keep their KV. kvwarm's own startup warms are such launches: when
/// two or more templates were warmed into different slots, every slot but the last one warmed
/// shows `n_prompt_tokens` 0 under the defaults.
public enum SlotPolicyGuard {
    /// The hint logged and shown by `kvwarm status`.
    public static let hint = "start llama-server with an explicit -np N (N ≥ templates + concurrent users) or with --no-cache-idle-slots, so idle slots keep their KV and kvwarm need not restore templates after requests"

    /// What kvwarm can do about a server that clears idle slots.
    public enum Verdict: Sendable, Equatable {
        /// Templates are put back into the server's RAM prompt cache after requests took them,
        /// at most `perMinute` times a minute each (``KeepWarmPlanner``).
        case keptInCache(perMinute: Int)
        /// Keeping warm is off (`keep_warm.restores_per_minute` 0).
        case off

        /// The STATUS= words for it.
        public var status: String {
            switch self {
            case .keptInCache: "kvwarm keeps templates in its RAM cache; new conversations may still miss"
            case .off: "templates go cold under traffic"
            }
        }
    }

    /// The verdict for a server that clears idle slots.
    public static func verdict(restoresPerMinute: Int) -> Verdict {
        restoresPerMinute > 0 ? .keptInCache(perMinute: restoresPerMinute) : .off
    }

    /// `warmed`: the slots of the startup warms, in order. Nil when the slots cannot tell
    /// (fewer than two distinct slots, or the earlier slots are busy or unknown).
    public static func idleSlotsCleared(warmed: [Int], slots: [LlamaClient.SlotInfo]) -> Bool? {
        var order: [Int] = []
        for s in warmed where !order.contains(s) { order.append(s) }
        order.removeAll { $0 == warmed.last }
        guard !order.isEmpty else { return nil }
        var cleared = 0
        for id in order {
            guard let slot = slots.first(where: { $0.id == id }), !slot.isProcessing else { return nil }
            if (slot.promptTokens ?? 0) == 0 { cleared += 1 }
        }
        if cleared == order.count { return true }
        return cleared == 0 ? false : nil
    }
}
