import Logging
import ServiceLifecycle

/// Carries watcher changes through the per-template debouncer into the coordinator's queue.
public struct EventPump<C: Clock>: Service where C.Duration == Duration {
    public let watcher: TemplateWatcher
    public let coordinator: WarmCoordinator
    public let debouncer: PerKeyDebouncer<String, C>
    public let logger: Logger

    public init(watcher: TemplateWatcher, coordinator: WarmCoordinator, debouncer: PerKeyDebouncer<String, C>,
                logger: Logger) {
        self.watcher = watcher
        self.coordinator = coordinator
        self.debouncer = debouncer
        self.logger = logger
    }

    public func run() async throws {
        let (names, nameSink) = AsyncStream<DebounceEvent<String>>.makeStream(bufferingPolicy: .unbounded)
        let changes = watcher.changes
        let coordinator = self.coordinator
        let logger = self.logger
        let feed = Task {
            for await change in changes {
                switch change {
                case .templates(let set):
                    for n in set.sorted() { nameSink.yield(DebounceEvent(key: n)) }
                case .attributes(let set):
                    for n in set.sorted() { nameSink.yield(DebounceEvent(key: n, restartsQuiet: false)) }
                case .rescanAll:
                    logger.info("rescanning every template", metadata: .stage(.watch, .watchOverflow))
                    for n in await coordinator.parts.config.templates.map(\.name) { nameSink.yield(DebounceEvent(key: n)) }
                }
            }
            nameSink.finish()
        }
        await withTaskCancellationHandler {
            for await name in debouncer.debounceEvents(names) {
                logger.debug("quiet period over", metadata: .stage(.debounce, .debounceFired, template: name))
                await coordinator.enqueue([name], announce: true)
            }
        } onCancel: {
            feed.cancel()
            nameSink.finish()
        }
    }
}
