import Logging
import ServiceLifecycle

/// Runs the coordinator's queue; on graceful shutdown sends STOPPING=1,
/// aborts the request in flight and writes the state file.
public struct WarmWorker: Service {
    public let coordinator: WarmCoordinator
    public let notifier: Notifier
    public let logger: Logger

    public init(coordinator: WarmCoordinator, notifier: Notifier, logger: Logger) {
        self.coordinator = coordinator
        self.notifier = notifier
        self.logger = logger
    }

    public func run() async throws {
        let coordinator = self.coordinator
        let notifier = self.notifier
        let worker = Task { await coordinator.runWorker() }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler { await worker.value } onCancel: { worker.cancel() }
        } onGracefulShutdown: {
            notifier.stopping(status: "stopping")
            worker.cancel()
        }
        await coordinator.flush()
        logger.notice("stopped; state written", metadata: .stage(.shutdown, .shutdown, [
            LogField.outcome: .string(Outcome.ok.rawValue),
        ]))
    }
}
