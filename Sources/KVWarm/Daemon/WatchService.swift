import ServiceLifecycle

/// Runs the inotify watcher until shutdown and hands it each new set of template files that
/// `dependencies` delivers (the coordinator's ``WarmCoordinator/dependencyChanges``) with
/// ``TemplateWatcher/request(_:)``, which never blocks: the watcher plans and applies the
/// set on its own queue and logs what it cannot watch.
public struct WatchService: Service {
    public let watcher: TemplateWatcher
    public let dependencies: AsyncStream<[String: Set<String>]>

    public init(watcher: TemplateWatcher, dependencies: AsyncStream<[String: Set<String>]>) {
        self.watcher = watcher
        self.dependencies = dependencies
    }

    public func run() async throws {
        let (watcher, dependencies) = (self.watcher, self.dependencies)
        let forward = Task {
            for await deps in dependencies { watcher.request(WatchSet(files: deps)) }
        }
        defer { forward.cancel() }
        try await cancelWhenGracefulShutdown { try await watcher.run() }
    }
}
