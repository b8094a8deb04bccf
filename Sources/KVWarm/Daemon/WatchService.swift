import ServiceLifecycle

/// Runs the inotify watcher until shutdown.
public struct WatchService: Service {
    public let watcher: TemplateWatcher

    public init(watcher: TemplateWatcher) { self.watcher = watcher }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { [watcher] in try await watcher.run() }
    }
}
