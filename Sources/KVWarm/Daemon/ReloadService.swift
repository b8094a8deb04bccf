import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the configuration on SIGHUP.
///
/// Sends RELOADING=1 with MONOTONIC_USEC, loads the file, adds and removes
/// templates and watches, warms what is new or changed, then READY=1. A bad
/// config keeps the old one in force and says why (log and STATUS). Signals
/// that arrive during a reload coalesce into one more reload.
public struct ReloadService: Service {
    public let coordinator: WarmCoordinator
    public let notifier: Notifier
    public let gate: ReadinessGate
    public let logger: Logger
    /// Loads the config and builds the parts (reads the API key file again).
    public let load: @Sendable () throws(ConfigError) -> WarmCoordinator.Parts

    public init(coordinator: WarmCoordinator, notifier: Notifier, gate: ReadinessGate, logger: Logger,
                load: @escaping @Sendable () throws(ConfigError) -> WarmCoordinator.Parts) {
        self.coordinator = coordinator
        self.notifier = notifier
        self.gate = gate
        self.logger = logger
        self.load = load
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let (requests, request) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let forward = Task {
            for await _ in signals { request.yield() }
            request.finish()
        }
        defer { forward.cancel() }
        await withTaskCancellationHandler {
            for await _ in requests {
                await gate.wait()
                await reload()
            }
        } onCancel: {
            request.finish()
        }
    }

    /// One reload.
    public func reload() async {
        notifier.reloading(status: "reloading configuration")
        let parts: WarmCoordinator.Parts
        do {
            parts = try load()
        } catch {
            logger.error("reload rejected, keeping the running configuration: \(error)",
                         metadata: Logger.Metadata.stage(.reload, .reloadRejected).merging([
                             LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("bad_config"),
                         ]) { $1 })
            let total = await coordinator.parts.config.templates.count
            notifier.ready(status: "watching \(total) templates; last reload rejected: \(error)")
            return
        }
        let changed = await coordinator.replace(parts: parts)
        await coordinator.enqueue(changed)
        await coordinator.drained()
        let total = parts.config.templates.count
        let failed = await coordinator.problems.count
        logger.notice("reloaded: \(total) templates, \(changed.count) new or changed",
                      metadata: Logger.Metadata.stage(.reload, .reloadDone).merging([
                          LogField.outcome: .string(Outcome.ok.rawValue),
                      ]) { $1 })
        notifier.ready(status: "watching \(total) templates (\(failed) failed)")
    }
}
