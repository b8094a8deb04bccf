import Logging
import ServiceLifecycle

/// Notices a restarted or changed llama-server and re-warms every template.
///
/// Every `backend.check_interval_seconds` (default 5), and every second while the backend
/// is down (so its return is seen within a second), it makes one request,
/// `GET /slots`, over a kept-alive connection. A restart shows as the request
/// failing and later succeeding (down, then up), slot task ids going backwards
/// (they count up from 0 in each server process), or a slot count or slot
/// context that no longer matches the fingerprint. Any of these, and otherwise
/// every `backend.fingerprint_check_seconds` (default 60), makes the check read
/// the full fingerprint (`GET /props` + `GET /v1/models`); a changed fingerprint
/// must read the same twice. A server started with `--no-slots` (501) gets
/// `GET /health` and the full fingerprint at every check instead. The re-warm
/// restores from KV files wherever the fingerprint allows. The decisions are
/// ``BackendCheck``'s; this service performs them.
///
/// After a check that found the same server up, its slots go to a ``KeepWarmRound``, which
/// restores templates that requests took or the server cleared. While the slots keep
/// changing (and for ``KeepWarmPlanner/activeFor`` after), checks run every
/// `keep_warm.active_check_ms` (default 250) instead.
public struct BackendMonitor: Service {
    public let coordinator: WarmCoordinator
    public let gate: ReadinessGate
    public let logger: Logger
    /// Told STATUS when the pipeline's router model unloads or loads.
    public let notifier: Notifier
    /// Makes the next check run at once (the router's events: a model loaded or unloaded).
    public let wake: CheckWake

    /// The intervals come from the coordinator's configuration at each check, so a reload applies them.
    public init(coordinator: WarmCoordinator, gate: ReadinessGate, logger: Logger, notifier: Notifier = .disabled,
                wake: CheckWake = CheckWake()) {
        self.coordinator = coordinator
        self.gate = gate
        self.logger = logger
        self.notifier = notifier
        self.wake = wake
    }

    static func probe(_ client: LlamaClient) async -> BackendCheck.Probe {
        do {
            return .up(slots: try await client.slots())
        } catch {
            switch error {
            case .cancelled: return .cancelled
            case .unauthorized: return .unauthorized
            case .unsupported, .malformed:
                // no usable /slots: liveness from /health, restarts from the fingerprint
                if let e = await client.health() { return e == .cancelled ? .cancelled : .down(e) }
                return .up(slots: nil)
            default: return .down(error)
            }
        }
    }

    static func readFingerprint(_ parts: PipelineParts) async -> Result<BackendFingerprint, BackendError> {
        do {
            return .success(try await BackendFingerprint.read(from: parts.client, kvTag: parts.config.backend.kvTag))
        } catch {
            return .failure(error)
        }
    }

    public func run() async throws {
        await gate.wait()
        if Task.isCancelled { return }
        let identity = coordinator.identity
        // after a degraded startup nothing has been warmed yet: the first healthy check warms everything
        // (also after a startup pass failed transiently and no retry has read the fingerprint since:
        // a redundant re-warm of restores, which is cheaper than deciding which templates missed out)
        var check = BackendCheck(down: await identity.fingerprint == nil, unloaded: await identity.modelUnloaded)
        // the first check runs at once: it records the slots' task ids right after the startup
        // warm, so a server restarted before the next check is told apart by them
        var first = true
        let keepWarm = KeepWarmRound(coordinator: coordinator, logger: logger)
        while !Task.isCancelled {
            if !first {
                let config = await coordinator.parts.config
                let interval = check.nextInterval(configured: config.backend.checkInterval,
                                                  active: identity.keeper.active() ? config.keepWarm.activeCheckInterval : nil)
                if await wake.sleep(for: interval) == false { return }
            }
            first = false
            // one read of the parts after the sleep: a reload during it applies to this check
            let parts = await coordinator.parts
            var slots: [LlamaClient.SlotInfo]?
            if await checkOnce(&check, parts, identity, slots: &slots) == false { return }
            // the slots of a check that found the same server up go to the keep-warm round
            if let slots, await keepWarm.run(slots, parts: parts) == false { return }
        }
    }

    /// One check; false when the service should stop. `slots` is set when the check saw the
    /// same server up with these slots (no restart, no re-warm).
    private func checkOnce(_ check: inout BackendCheck, _ parts: PipelineParts, _ identity: BackendIdentity,
                           slots: inout [LlamaClient.SlotInfo]?) async -> Bool {
        let known = await identity.fingerprint
        let restarted: Bool
        let probe = await Self.probe(parts.client)
        switch check.probed(probe, known: known, now: .now,
                            fingerprintInterval: parts.config.backend.fingerprintInterval) {
        case .stop: return false
        case .skip:
            if case .up(let s) = probe, known != nil { slots = s }
            return true
        case .wentDown(let error):
            await identity.invalidate()
            if case .modelUnloaded(let model) = error {
                await identity.noteModelLoaded(false)
                let total = parts.config.templates.count
                notifier.status(ReadinessAggregation.unloadedStatus(model: model, templates: total))
                logger.notice("router model \(model) unloaded: its templates are warmed when it loads again",
                              metadata: .stage(.backend, .modelUnloaded, [
                                  LogField.outcome: .string(Outcome.unloaded.rawValue), LogField.reason: .string(error.reason),
                              ]))
                return true
            }
            logger.warning("backend \(parts.config.backend.address) unavailable: \(error)", metadata: .stage(.backend, .backendUnavailable, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
            ]))
            return true
        case .readFingerprint(let r):
            restarted = r
        }
        // compared with the fingerprint as it is after the read: a pass may have updated it meanwhile
        var verdict = check.read(await Self.readFingerprint(parts), current: await identity.fingerprint)
        if case .confirm(let first) = verdict {
            let again = try? await Self.readFingerprint(parts).get()
            verdict = check.confirmed(first, again: again)
        }
        switch verdict {
        case .stop: return false
        case .skip, .confirm: return true
        case .readFailed(let error):
            logger.warning("cannot read the backend fingerprint: \(error)", metadata: .stage(.backend, .backendUnavailable, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
            ]))
            return true
        case .unstable:
            logger.warning("backend fingerprint differs between two reads; ignoring it until it is stable",
                           metadata: .stage(.backend, .backendChanged, [
                               LogField.outcome: .string(Outcome.failed.rawValue),
                               LogField.reason: .string("fingerprint_unstable"),
                               LogField.hint: .string("llama-server reports different /props on consecutive calls; kvwarm keeps the last stable fingerprint"),
                           ]))
            return true
        case .record(let fp):
            let previousBuild = await identity.fingerprint?.build
            let changed = await identity.record(fp)
            guard case .all(let reason, let resetSlots) = check.recorded(fp, changed: changed, restarted: restarted,
                                                                         previousBuild: previousBuild) else {
                if case .up(let s) = probe { slots = s }
                return true
            }
            let what = if let model = parts.client.model, await identity.modelUnloaded {
                "router model \(model) loaded: re-warming its templates"
            } else {
                "backend \(changed ? "changed" : "restarted"): re-warming every template"
            }
            logger.notice("\(what)",
                          metadata: .stage(.backend, .backendChanged, [
                              LogField.outcome: .string(Outcome.ok.rawValue), LogField.reason: .string(reason),
                          ]))
            if resetSlots { await identity.restarted() }
            if await identity.noteModelLoaded(true) {
                notifier.status("watching \(Counted.of(parts.config.templates.count, "template")) (model loaded)")
            }
            await coordinator.enqueueAll()
            return true
        }
    }
}
