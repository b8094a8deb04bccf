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
    public static let hint = "start llama-server with an explicit -np N (N ≥ templates + concurrent users) or with --no-cache-idle-slots, so idle slots keep their KV"

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
