import Logging

/// One keep-warm round on a `GET /slots` answer: asks the backend's ``SlotKeeper`` what to do
/// and does it (restores into slots, publishes into the RAM cache, log records, the idle-slot
/// finding).
///
/// A round acts only when no warm pass is queued or running, and holds the slots until it ends
/// (``WarmCoordinator/beginKeepWarm()``): a pass queued meanwhile starts after it, so the two
/// never pick the same idle slot.
/// A restore that the server refuses (its KV file gone, for example) queues a pass of the
/// template, which prefills and saves it again.
public struct KeepWarmRound: Sendable {
    public let coordinator: WarmCoordinator
    public let logger: Logger

    public init(coordinator: WarmCoordinator, logger: Logger) {
        self.coordinator = coordinator
        self.logger = logger
    }

    /// Runs one round; false when cancelled.
    public func run(_ slots: [LlamaClient.SlotInfo], parts: PipelineParts) async -> Bool {
        let identity = coordinator.identity
        let keeper = identity.keeper
        let perMinute = parts.config.keepWarm.restoresPerMinute
        let candidates = await coordinator.keepWarmCandidates()
        let eos = await identity.fingerprint?.eosToken
        let clearing = await identity.clearsIdleSlots
        // the slots are this round's until it ends: no pass starts meanwhile
        let mayRestore = await coordinator.beginKeepWarm()
        let actions = keeper.observe(slots, candidates: candidates, perMinute: perMinute, mayRestore: mayRestore,
                                     clearing: clearing, sentinel: eos != nil)
        var ownSlot: Int?
        var cancelled = false
        rounds: for action in actions {
            switch action {
            case .publish(let name, let slot, let file, let prompt, let tokens):
                ownSlot = slot
                guard let eos else { break }
                switch await publish(name, slot: slot, file: file, prompt: prompt, tokens: tokens, eos: eos, parts.client) {
                case .cancelled: cancelled = true; break rounds
                case .failed(let error):
                    keeper.publishEnded(name, ok: false, serverMS: 0)
                    if !error.isTransient { await coordinator.enqueue([name]) }
                case .done(let ok, let ms):
                    keeper.publishEnded(name, ok: ok, serverMS: ms)
                    if ok { coordinator.metrics.keptWarm(name) }
                }
            case .restore(let name, let slot, let file):
                do {
                    let r = try await parts.client.restoreSlot(slot, fileName: file)
                    keeper.restoreEnded(name, slot: slot, restoredTokens: r.restoredTokens, restoreMS: r.restoreMS)
                    coordinator.metrics.keptWarm(name)
                    identity.scheduler.used(slot, by: name)
                    logger.debug("kept warm: restored into slot \(slot) (\(r.restoredTokens) tokens, \(Self.ms(r.restoreMS)) ms)",
                                 metadata: .stage(.keep, .keptWarm, template: name, [
                                     LogField.outcome: .string(Outcome.ok.rawValue), LogField.slot: .stringConvertible(slot),
                                     LogField.promptTokens: .stringConvertible(r.restoredTokens),
                                     "VIA": .string("slot"), "SERVER_MS": .string(Self.ms(r.restoreMS)),
                                 ]))
                } catch {
                    keeper.restoreEnded(name, slot: slot, restoredTokens: nil)
                    if error == .cancelled { cancelled = true; break rounds }
                    logger.warning("keeping warm failed: restoring \(file) into slot \(slot): \(error)",
                                   metadata: .stage(.keep, .keepWarmFailed, template: name, [
                                       LogField.outcome: .string(Outcome.failed.rawValue),
                                       LogField.reason: .string(error.reason), LogField.slot: .stringConvertible(slot),
                                   ]))
                    if !error.isTransient { await coordinator.enqueue([name]) }
                }
            case .budgetSpent(let name, let n):
                logger.notice("kept warm \(n) times in the last minute: waits for its budget; until then a new conversation relies on llama-server's RAM cache",
                              metadata: .stage(.keep, .keepWarmBudget, template: name, [
                                  LogField.reason: .string("budget_spent"),
                                  LogField.hint: .string("raise keep_warm.restores_per_minute, or start llama-server with an explicit -np N so idle slots keep their KV"),
                              ]))
            case .noRoom(let names):
                logger.debug("no idle empty slot to keep \(names.joined(separator: ", ")) warm in",
                             metadata: .stage(.keep, .keptWarm, [LogField.reason: .string("no_room")]))
            case .slotCleared(let name, let slot):
                guard let fp = await identity.fingerprint else { break }
                if await identity.noteIdleSlotsCleared(true, digest: fp.digest) {
                    logger.warning("llama-server cleared idle slot \(slot), which held \(name), when another request started (its default -np with unified KV and --cache-idle-slots): kvwarm now keeps templates in its RAM prompt cache, where older conversations can still win the server's choice",
                                  metadata: .stage(.keep, .idleSlotsCleared, template: name, [
                                      LogField.reason: .string("idle_slots_cleared"),
                                      LogField.hint: .string(SlotPolicyGuard.hint),
                                  ]))
                }
            }
        }
        if !cancelled, let own = ownSlot, let after = try? await parts.client.slots() {
            // the slots after kvwarm's own requests are the baseline of the next round
            keeper.ownRequestsDone(after, own: own, candidates: candidates)
        }
        if mayRestore { await coordinator.endKeepWarm() }
        if cancelled || Task.isCancelled { return false }
        if let s = keeper.summaryDue() {
            logger.info("kept templates warm: \(Counted.of(s.restores, "restore")) in the last \(Int(s.over.milliseconds / 60_000)) min, \(Self.ms(s.restoreMS)) ms of server time",
                        metadata: .stage(.keep, .keepWarmSummary, [
                            "RESTORES": .stringConvertible(s.restores), "SERVER_MS": .string(Self.ms(s.restoreMS)),
                        ]))
        }
        return true
    }

    enum Published {
        case done(ok: Bool, serverMS: Double)
        case failed(BackendError)
        case cancelled
    }

    /// The text of kvwarm's own request that makes the server move a slot to its RAM cache.
    static let publishPrompt = "kvwarm"

    /// Puts `name` into llama-server's RAM prompt cache through idle `slot`: restores its KV file,
    /// extends it by the end-of-sequence token (one token computed, the rest reused), then sends
    /// a tiny unrelated prompt pinned to the slot. The server keeps less than half of the slot
    /// for it, so it first saves the slot to the RAM cache (server-context.cpp:1730-1789).
    func publish(_ name: String, slot: Int, file: String, prompt: String, tokens: Int, eos: String,
                 _ client: LlamaClient) async -> Published {
        do {
            let restored = try await client.restoreSlot(slot, fileName: file)
            let extended = try await client.complete(prompt: prompt + eos, slot: slot, predict: 0)
            let moved = try await client.complete(prompt: Self.publishPrompt, slot: slot, predict: 0)
            let ms = restored.restoreMS + extended.promptMS + moved.promptMS
            let ok = extended.cachedTokens + KeepWarmPlanner.tokenSlack >= tokens
            if ok {
                logger.debug("kept warm: put back into llama-server's RAM cache through slot \(slot) (\(tokens) tokens, \(Self.ms(ms)) ms)",
                             metadata: .stage(.keep, .keptWarm, template: name, [
                                 LogField.outcome: .string(Outcome.ok.rawValue), LogField.slot: .stringConvertible(slot),
                                 LogField.promptTokens: .stringConvertible(tokens), "VIA": .string("ram_cache"),
                                 "SERVER_MS": .string(Self.ms(ms)),
                             ]))
            } else {
                // a request that took the idle slot between the restore and the extension: it goes again later
                logger.info("keeping warm failed: after restoring \(file) into slot \(slot) the server reused \(extended.cachedTokens) of \(tokens) tokens",
                               metadata: .stage(.keep, .keepWarmFailed, template: name, [
                                   LogField.outcome: .string(Outcome.failed.rawValue),
                                   LogField.reason: .string("restore_not_reused"), LogField.slot: .stringConvertible(slot),
                               ]))
            }
            return .done(ok: ok, serverMS: ms)
        } catch {
            if error == .cancelled { return .cancelled }
            logger.warning("keeping warm failed: putting \(file) back through slot \(slot): \(error)",
                           metadata: .stage(.keep, .keepWarmFailed, template: name, [
                               LogField.outcome: .string(Outcome.failed.rawValue),
                               LogField.reason: .string(error.reason), LogField.slot: .stringConvertible(slot),
                           ]))
            return .failed(error)
        }
    }

    static func ms(_ v: Double) -> String { String(Int(v.rounded())) }
}
