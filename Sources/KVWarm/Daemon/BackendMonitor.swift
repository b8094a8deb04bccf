import Logging
import ServiceLifecycle

/// Notices a restarted or changed llama-server and re-warms every template.
///
/// Every `backend.check_interval_seconds` (default 5) it makes one request,
/// `GET /slots`, over a kept-alive connection. A restart shows as the request
/// failing and later succeeding (down, then up), slot task ids going backwards
/// (they count up from 0 in each server process), or a slot count or slot
/// context that no longer matches the fingerprint. Any of these, and otherwise
/// every `backend.fingerprint_check_seconds` (default 60), makes the check read
/// the full fingerprint (`GET /props` + `GET /v1/models`); a changed fingerprint
/// must read the same twice. A server started with `--no-slots` (501) gets
/// `GET /health` and the full fingerprint at every check instead. The re-warm
/// restores from KV files wherever the fingerprint allows.
public struct BackendMonitor: Service {
    public let coordinator: WarmCoordinator
    public let gate: ReadinessGate
    public let logger: Logger

    /// The intervals come from the coordinator's configuration at each check, so a reload applies them.
    public init(coordinator: WarmCoordinator, gate: ReadinessGate, logger: Logger) {
        self.coordinator = coordinator
        self.gate = gate
        self.logger = logger
    }

    /// Restart detection from the slots' task ids.
    public struct TaskCounter: Sendable, Equatable {
        public private(set) var highest: Int?

        public init() {}

        /// Feeds one `GET /slots`; true when the ids went backwards (a new server process).
        public mutating func observe(_ slots: [LlamaClient.SlotInfo]) -> Bool {
            let now = slots.compactMap(\.idTask).max()
            defer { highest = now }
            guard let before = highest else { return false }
            guard let now else { return true }
            return now < before
        }
    }

    /// What the one-request check saw.
    enum Probe: Equatable {
        /// The backend answered; `slots` is nil when it has no slots endpoint (`--no-slots`).
        case up(slots: [LlamaClient.SlotInfo]?)
        /// The backend is not usable now.
        case down(BackendError)
        /// The key was rejected: the warm path reports that, the monitor stays quiet.
        case unauthorized
        case cancelled
    }

    static func probe(_ client: LlamaClient) async -> Probe {
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

    /// Whether `slots` describe another layout than `fp` (slot count or per-slot context).
    static func shapeDiffers(_ slots: [LlamaClient.SlotInfo], from fp: BackendFingerprint) -> Bool {
        if slots.count != fp.totalSlots { return true }
        return slots.contains { $0.nCtx != 0 && fp.nCtx != 0 && $0.nCtx != fp.nCtx }
    }

    public func run() async throws {
        await gate.wait()
        if Task.isCancelled { return }
        // after a degraded startup nothing has been warmed yet: the first healthy check warms everything
        // (also after a startup pass failed transiently and no retry has read the fingerprint since:
        // a redundant re-warm of restores, which is cheaper than deciding which templates missed out)
        var down = await coordinator.fingerprint == nil
        var fingerprintFailing = false
        var unstableReported = false
        var counter = TaskCounter()
        var lastFullRead: ContinuousClock.Instant?
        while !Task.isCancelled {
            do { try await Task.sleep(for: await coordinator.parts.config.backend.checkInterval) } catch { return }
            // one read of the parts after the sleep: a reload during it applies to this check
            let parts = await coordinator.parts
            let client = parts.client
            let kvTag = parts.config.backend.kvTag
            let known = await coordinator.fingerprint
            var restarted = down
            var suspicious = down
            switch await Self.probe(client) {
            case .cancelled:
                return
            case .unauthorized:
                continue
            case .down(let error):
                if !down {
                    down = true
                    await coordinator.invalidateFingerprint()
                    logger.warning("backend unavailable: \(error)", metadata: Logger.Metadata.stage(.backend, .backendUnavailable).merging([
                        LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
                    ]) { $1 })
                }
                continue
            case .up(let slots):
                if let slots {
                    if counter.observe(slots) { restarted = true; suspicious = true }
                    if let known, Self.shapeDiffers(slots, from: known) { suspicious = true }
                } else {
                    suspicious = true
                }
            }
            if let last = lastFullRead, last.duration(to: .now) < parts.config.backend.fingerprintInterval,
               !suspicious, known != nil {
                continue
            }
            lastFullRead = .now
            let fp: BackendFingerprint
            do {
                fp = try await BackendFingerprint.read(from: client, kvTag: kvTag)
            } catch {
                if error == .cancelled { return }
                // 401: the warm path reports credential problems; anything else is said once per episode
                if error != .unauthorized && !fingerprintFailing {
                    fingerprintFailing = true
                    logger.warning("cannot read the backend fingerprint: \(error)", metadata: Logger.Metadata.stage(.backend, .backendUnavailable).merging([
                        LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
                    ]) { $1 })
                }
                lastFullRead = nil  // read it again at the next check
                continue
            }
            fingerprintFailing = false
            // a change must read the same twice: a fingerprint that differs between two calls
            // would otherwise re-prefill every template at every check
            // (read again: a pass may have updated it while the fingerprint was read)
            if let current = await coordinator.fingerprint, !fp.differences(from: current).isEmpty {
                let again = try? await BackendFingerprint.read(from: client, kvTag: kvTag)
                guard let again, again.differences(from: fp).isEmpty else {
                    if !unstableReported {
                        unstableReported = true
                        logger.warning("backend fingerprint differs between two reads; ignoring it until it is stable",
                                       metadata: Logger.Metadata.stage(.backend, .backendChanged).merging([
                                           LogField.outcome: .string(Outcome.failed.rawValue),
                                           LogField.reason: .string("fingerprint_unstable"),
                                           LogField.hint: .string("llama-server reports different /props on consecutive calls; kvwarm keeps the last stable fingerprint"),
                                       ]) { $1 })
                    }
                    continue
                }
            }
            unstableReported = false
            let previous = await coordinator.fingerprint
            let changed = await coordinator.updateFingerprint(fp)
            if previous?.build != nil, previous?.build != fp.build { restarted = true }
            if restarted || changed {
                down = false
                logger.notice("backend \(changed ? "changed" : "restarted"): re-warming every template",
                              metadata: Logger.Metadata.stage(.backend, .backendChanged).merging([
                                  LogField.outcome: .string(Outcome.ok.rawValue),
                                  LogField.reason: .string(changed ? "fingerprint_changed" : "restarted"),
                              ]) { $1 })
                if restarted { await coordinator.backendRestarted() }
                await coordinator.enqueueAll()
            }
        }
    }
}
