import Logging
import ServiceLifecycle

/// Startup: wait for the backend, warm every template, then READY=1.
///
/// While it waits and warms it keeps systemd's start timeout extended
/// (EXTEND_TIMEOUT_USEC) as long as progress continues, with
/// `STATUS=warming i/N (name)`. At the backend deadline the configured
/// policy applies: "degraded" sends READY=1 saying so, "fail" exits 69.
public struct StartupSequence: Service {
    public let coordinator: WarmCoordinator
    public let notifier: Notifier
    public let gate: ReadinessGate
    public let logger: Logger
    /// How often EXTEND_TIMEOUT_USEC is sent, and by how much it extends.
    public var heartbeat: Duration = .seconds(5)
    public var extension_: Duration = .seconds(20)
    /// How often a wait for the backend is logged.
    static let progressEvery: Duration = .seconds(10)

    public init(coordinator: WarmCoordinator, notifier: Notifier, gate: ReadinessGate, logger: Logger) {
        self.coordinator = coordinator
        self.notifier = notifier
        self.gate = gate
        self.logger = logger
    }

    public func run() async throws {
        let config = await coordinator.parts.config
        let client = await coordinator.parts.client
        let total = config.templates.count
        let started = ContinuousClock.now
        let model = client.model.map { ", router model \($0)" } ?? ""
        logger.info("starting: \(Counted.of(total, "template")), backend \(config.backend.address)\(model)",
                    metadata: .stage(.startup, .startupBegin))
        for n in config.notices {
            logger.notice("\(n)", metadata: .stage(.startup, .startupBegin))
        }

        // the backend
        let clock = ContinuousClock()
        let deadline = clock.now + config.startup.backendWait
        var lastReason: BackendError?
        var lastWaitLog: ContinuousClock.Instant?
        while true {
            if let error = await client.health() {
                lastReason = error
            } else if let dir = config.backend.slotSaveDir, !FileSystem.exists(dir) {
                lastReason = .slotDirectoryMissing(dir)
            } else {
                lastReason = nil
                break
            }
            if lastReason == .cancelled || Task.isCancelled { return }
            if case .modelUnloaded(let model) = lastReason {
                // kvwarm never loads a model: its templates are warmed when the router loads it
                let status = ReadinessAggregation.unloadedStatus(model: model, templates: total)
                logger.notice("\(status)", metadata: .stage(.startup, .modelUnloaded, [
                    LogField.outcome: .string(Outcome.unloaded.rawValue), LogField.reason: .string("model_unloaded"),
                ]))
                await coordinator.identity.noteModelLoaded(false)
                notifier.ready(status: status)
                gate.open()
                return
            }
            if clock.now >= deadline { break }
            if lastWaitLog.map({ $0.duration(to: clock.now) >= Self.progressEvery }) ?? true {
                lastWaitLog = clock.now
                let waited = Int(started.duration(to: .now).milliseconds / 1000)
                logger.notice("waiting for backend \(config.backend.address): \(lastReason!.description) (\(waited) s of \(Int(config.startup.backendWait.milliseconds / 1000)) s)",
                              metadata: .stage(.startup, .backendWaiting, [
                                  LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(lastReason!.reason),
                              ]))
            }
            notifier.extendTimeout(by: extension_, status: "waiting for backend \(config.backend.address): \(lastReason!.reason)")
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
        }
        if let reason = lastReason {
            let waited = Int(config.startup.backendWait.milliseconds / 1000)
            switch config.startup.onUnavailable {
            case .fail:
                let status = "failed: backend \(config.backend.address) unavailable after \(waited) s (\(reason.reason))"
                logger.critical("\(status)", metadata: .stage(.startup, .backendUnavailable, [
                    LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(reason.reason),
                ]))
                notifier.failed(status: status, errno: 113)  // EHOSTUNREACH
                throw DaemonExit(.unavailable, status)
            case .degraded:
                let status = "degraded: backend \(config.backend.address) unavailable (\(reason.reason)); warming \(total) templates when it returns"
                logger.warning("\(status)", metadata: .stage(.startup, .startupDegraded, [
                    LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(reason.reason),
                ]))
                notifier.ready(status: status)
                gate.open()
                return
            }
        }

        // the warm
        await coordinator.enqueueAll()
        let heartbeatTask = Task {
            // a pass can legitimately run up to the request timeout; past that it is stuck,
            // and systemd's own start timeout should be allowed to end the start
            let stuckAfter = config.backend.timeout + .seconds(30)
            while !Task.isCancelled {
                let (done, current) = await coordinator.progress()
                let what = current.map { " (\($0))" } ?? ""
                let status = "warming \(min(done + 1, total))/\(total)\(what)"
                if let age = await coordinator.inFlightAge(), age > stuckAfter {
                    notifier.status(status + ": no progress")
                } else {
                    notifier.extendTimeout(by: extension_, status: status)
                }
                do { try await Task.sleep(for: heartbeat) } catch { return }
            }
        }
        await coordinator.drained()
        heartbeatTask.cancel()
        let stopped = await coordinator.stopped
        if stopped {
            // shutdown began during the warm: no READY. Returning now would look to the
            // service group like an unexpected finish, so wait for this service's turn.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return
        }
        if Task.isCancelled { return }
        let failed = await coordinator.problems.count
        var status = "watching \(Counted.of(total, "template")) (\(failed) failed)"
        if let note = await checkSlotPolicy(client) { status += "; llama-server clears idle slots: \(note)" }
        logger.notice("ready: \(status) after \(Int(started.duration(to: .now).milliseconds)) ms",
                      metadata: .stage(.startup, .startupReady, [
                          LogField.outcome: .string(failed == 0 ? Outcome.ok.rawValue : Outcome.failed.rawValue),
                          LogField.durationMS: .stringConvertible(Int(started.duration(to: .now).milliseconds)),
                      ]))
        notifier.ready(status: status)
        gate.open()
    }

    /// After the startup warm: whether the server clears idle slots (``SlotPolicyGuard``);
    /// says so once with a hint, records it for `kvwarm status` and returns what STATUS says.
    private func checkSlotPolicy(_ client: LlamaClient) async -> String? {
        let warmed = await coordinator.takeWarmedSlots()
        guard let fp = await coordinator.identity.fingerprint, let slots = try? await client.slots(),
              let cleared = SlotPolicyGuard.idleSlotsCleared(warmed: warmed, slots: slots) else { return nil }
        await coordinator.identity.noteIdleSlotsCleared(cleared, digest: fp.digest)
        guard cleared else { return nil }
        let config = await coordinator.parts.config
        let verdict = SlotPolicyGuard.verdict(restoresPerMinute: config.keepWarm.restoresPerMinute)
        let metadata = Logger.Metadata.stage(.startup, .idleSlotsCleared, [
            LogField.reason: .string("idle_slots_cleared"), LogField.hint: .string(SlotPolicyGuard.hint),
        ])
        let what = "llama-server clears idle slots after every request (its default -np with unified KV and --cache-idle-slots): a warmed template keeps its slot only until the next request of anyone"
        switch verdict {
        case .keptInCache(let n):
            logger.warning("\(what); kvwarm puts templates back into llama-server's RAM prompt cache after requests took them (at most \(n) times a minute each), but older conversations in that cache can still win the server's choice, so new conversations may miss",
                           metadata: metadata)
        case .off:
            logger.warning("\(what), and keep_warm.restores_per_minute is 0: new conversations may not find the templates",
                           metadata: metadata)
        }
        return verdict.status
    }
}
