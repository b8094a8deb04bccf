/// What a warm did, with the server's own figures as proof.
public struct WarmReport: Sendable, Equatable {
    /// Why a planned restore became a prefill.
    public enum RestoreFallback: Sendable, Equatable {
        /// The server refused the file (400): missing, truncated or of another layout.
        case refused(String)
        /// The restore "succeeded" but the probe reused too little: the KV did not take
        /// (typically an SWA model served without --swa-full).
        case ineffective(cached: Int, of: Int)
    }

    /// What actually warmed the slot.
    public var mode: WarmMode
    public var slot: Int
    public var promptTokens: Int
    /// `timings.cache_n` of the warm (prefill) or of the probe (restore).
    public var cachedTokens: Int
    public var processedTokens: Int
    public var durationMS: Double
    public var fallback: RestoreFallback?
}

/// The warm stage: puts a prompt's KV into an idle llama-server slot.
///
/// - prefill: one completion of the prompt with `n_predict` 1 and
///   `cache_prompt`, pinned to an idle slot.
/// - restore: `POST /slots/{id}?action=restore` into an idle slot, then a
///   1-token probe of the same prompt pinned there. It counts only when the
///   probe's `timings.cache_n` is at least 90 % of the prompt; otherwise, or
///   when the server refuses the file, the probe itself has just prefilled the
///   slot, so the result is reported as a prefill with the reason.
public struct TemplateWarmer: Sendable {
    public let client: LlamaClient
    public let scheduler: SlotScheduler
    /// How long to wait for an idle slot before letting the server choose.
    public var slotWait: Duration
    /// Fraction of the prompt a restore probe must find cached.
    public static let effectiveRestoreRatio = 0.9

    /// Whether a probe that found `cached` of `of` prompt tokens in the slot shows a restore that
    /// took: 90 % of the prompt, or all but the last token (the server always evaluates at least
    /// one), whichever is fewer, so a 9-token template restored as 8/9 is not called ineffective.
    public static func restoreTook(cached: Int, of prompt: Int) -> Bool {
        let ninety = Int((effectiveRestoreRatio * Double(prompt)).rounded(.up))
        return cached >= min(ninety, prompt - 1)
    }

    public init(client: LlamaClient, scheduler: SlotScheduler, slotWait: Duration = .seconds(30)) {
        self.client = client
        self.scheduler = scheduler
        self.slotWait = slotWait
    }

    /// An idle slot to pin, or -1 to let the server pick (no `/slots`, or all busy past `slotWait`).
    public func idleSlot(for template: String) async throws(BackendError) -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now + slotWait
        while true {
            let slots: [LlamaClient.SlotInfo]
            do {
                slots = try await client.slots()
            } catch .unsupported {
                return -1  // --no-slots: the server chooses, it never pins a busy slot itself
            }
            if let s = scheduler.choose(for: template, from: slots) { return s }
            if clock.now >= deadline { return -1 }
            do { try await Task.sleep(for: .milliseconds(200)) } catch { throw .cancelled }
        }
    }

    /// Prefills `prompt` for `template`.
    public func prefill(_ prompt: String, template: String) async throws(BackendError) -> WarmReport {
        let started = ContinuousClock.now
        let slot = try await idleSlot(for: template)
        let r = try await client.complete(prompt: prompt, slot: slot)
        scheduler.used(r.slot, by: template)
        return WarmReport(mode: .prefill, slot: r.slot, promptTokens: r.promptTokens, cachedTokens: r.cachedTokens,
                          processedTokens: r.processedTokens, durationMS: started.duration(to: .now).milliseconds)
    }

    /// Restores `fileName` and verifies it with a probe; falls back as described above.
    public func restore(_ prompt: String, fileName: String, template: String) async throws(BackendError) -> WarmReport {
        let started = ContinuousClock.now
        let slot = try await idleSlot(for: template)
        guard slot >= 0 else {
            // no slot can be pinned for a restore: prefill through the server's choice
            var r = try await prefill(prompt, template: template)
            r.fallback = .refused("no idle slot to restore into")
            return r
        }
        var fallback: WarmReport.RestoreFallback?
        do {
            try await client.restoreSlot(slot, fileName: fileName)
        } catch {
            switch error {
            case .http(400, let m): fallback = .refused(m)
            default: throw error
            }
        }
        let probe = try await client.complete(prompt: prompt, slot: slot)
        scheduler.used(probe.slot, by: template)
        let took = Self.restoreTook(cached: probe.cachedTokens, of: probe.promptTokens)
        if fallback == nil, !took {
            fallback = .ineffective(cached: probe.cachedTokens, of: probe.promptTokens)
        }
        return WarmReport(mode: fallback == nil ? .restore : .prefill, slot: probe.slot,
                          promptTokens: probe.promptTokens, cachedTokens: probe.cachedTokens,
                          processedTokens: probe.processedTokens, durationMS: started.duration(to: .now).milliseconds,
                          fallback: fallback)
    }
}

extension Duration {
    /// The duration in (fractional) milliseconds.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
