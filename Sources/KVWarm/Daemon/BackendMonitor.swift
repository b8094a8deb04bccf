import Logging
import ServiceLifecycle

/// Notices a restarted or changed llama-server and re-warms every template.
///
/// Every `backend.check_interval_seconds` (default 5) it makes a light check:
/// `GET /health`, then `GET /props` + `GET /v1/models` for the fingerprint and
/// `GET /slots` for the task counter. A restart shows as the backend going
/// down and up, a fingerprint change, or slot task ids going backwards (task
/// ids count up from 0 in each server process). The re-warm then restores
/// from KV files wherever the fingerprint allows.
public struct BackendMonitor: Service {
    public let coordinator: WarmCoordinator
    public let gate: ReadinessGate
    public let logger: Logger
    public let interval: Duration

    public init(coordinator: WarmCoordinator, gate: ReadinessGate, logger: Logger, interval: Duration) {
        self.coordinator = coordinator
        self.gate = gate
        self.logger = logger
        self.interval = interval
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

    public func run() async throws {
        await gate.wait()
        if Task.isCancelled { return }
        // after a degraded startup nothing has been warmed yet: the first healthy check warms everything
        var down = await coordinator.fingerprint == nil
        var fingerprintFailing = false
        var unstableReported = false
        var counter = TaskCounter()
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            let client = await coordinator.parts.client
            let kvTag = await coordinator.parts.config.backend.kvTag
            if let error = await client.health() {
                if error == .cancelled { return }
                if !down {
                    down = true
                    await coordinator.invalidateFingerprint()
                    logger.warning("backend unavailable: \(error)", metadata: Logger.Metadata.stage(.backend, .backendUnavailable).merging([
                        LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
                    ]) { $1 })
                }
                continue
            }
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
                continue
            }
            fingerprintFailing = false
            // a change must read the same twice: a fingerprint that differs between two calls
            // would otherwise re-prefill every template at every check
            if let known = await coordinator.fingerprint, !fp.differences(from: known).isEmpty {
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
            var restarted = down
            if let slots = try? await client.slots() {
                if counter.observe(slots) { restarted = true }
            }
            let known = await coordinator.fingerprint
            let changed = await coordinator.updateFingerprint(fp)
            if known?.build != nil, known?.build != fp.build { restarted = true }
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
