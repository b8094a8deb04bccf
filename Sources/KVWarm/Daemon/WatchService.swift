import Logging
import ServiceLifecycle

/// Runs the inotify watcher until shutdown, and applies each new set of template files
/// that `dependencies` delivers (the coordinator's ``WarmCoordinator/dependencyChanges``)
/// on a task of its own, so a pass never waits for the watcher.
public struct WatchService: Service {
    public let watcher: TemplateWatcher
    public let dependencies: AsyncStream<[String: Set<String>]>
    public let logger: Logger

    public init(watcher: TemplateWatcher, dependencies: AsyncStream<[String: Set<String>]>, logger: Logger) {
        self.watcher = watcher
        self.dependencies = dependencies
        self.logger = logger
    }

    /// Sets what `watcher` watches; a failure is logged (the other templates stay watched).
    public static func apply(_ set: WatchSet, to watcher: TemplateWatcher, logger: Logger) {
        do {
            try watcher.update(set)
        } catch {
            logger.error("cannot watch template files: \(error)", metadata: .stage(.watch, .watchError, [
                LogField.outcome: .string(Outcome.failed.rawValue),
            ]))
        }
    }

    public func run() async throws {
        let (watcher, dependencies, logger) = (self.watcher, self.dependencies, self.logger)
        let forward = Task {
            for await deps in dependencies { Self.apply(WatchSet(files: deps), to: watcher, logger: logger) }
        }
        defer { forward.cancel() }
        try await cancelWhenGracefulShutdown { try await watcher.run() }
    }
}
