import Logging
import ServiceLifecycle

/// One pipeline's running parts (a backend, or one model of a router), built from its state
/// file and its view of the configuration.
public struct PipelineAssembly: Sendable {
    public let key: PipelineKey
    public let coordinator: WarmCoordinator
    public let gate: ReadinessGate
    public let wake: CheckWake
    public let logger: Logger
    /// Watch, event pump, startup, backend monitor and worker, in service-group order.
    public let services: [ServiceGroupConfiguration.ServiceConfiguration]

    /// The logger of pipeline `key`: every record carries `BACKEND` (and `MODEL` for a router model).
    public static func logger(_ base: Logger, _ key: PipelineKey) -> Logger {
        var l = base
        l[metadataKey: LogField.backend] = .string(key.backend)
        if let m = key.model { l[metadataKey: LogField.model] = .string(m) }
        return l
    }

    /// Loads the pipeline's state file (moving an unreadable one aside), forgets templates no
    /// longer configured for it, sweeps its orphaned KV files and builds its services.
    public static func build(key: PipelineKey, parts: PipelineParts, stateDir: String, notifier: Notifier,
                             logger base: Logger) throws -> PipelineAssembly {
        let logger = Self.logger(base, key)
        let config = parts.config
        let store = StateStore(directory: stateDir, fileName: key.stateFileName)
        try store.prepare()
        var state = WarmState()
        switch store.load() {
        case .loaded(let s): state = s
        case .absent: break
        case .discarded(let reason, let movedTo):
            logger.warning("state file discarded (\(reason)); moved to \(movedTo ?? "nowhere"); templates re-prefill",
                           metadata: .stage(.startup, .startupBegin))
        }
        // forget templates no longer configured here, then sweep the KV files of this pipeline's
        // templates (configured or recorded) that no record keeps; other stems belong to whoever
        // shares the directory
        let names = Set(config.templates.map(\.name))
        let recordedStems = state.templates.values.compactMap { $0.kvFile.flatMap(SlotFileNaming.templateStem(of:)) }
        let stems = Set(config.templates.map { SlotFileNaming.stem(template: $0.name, model: $0.model) })
            .union(recordedStems)
        state.templates = state.templates.filter { names.contains($0.key) }
        let keep = Set(state.templates.values.compactMap(\.kvFile))
        let removed = parts.persister.sweepOrphans(keep: keep, stems: stems)
        if !removed.isEmpty {
            logger.info("removed \(Counted.of(removed.count, "orphaned KV file"))", metadata: .stage(.persist, .persisted, [
                "FILES": .string(removed.joined(separator: ",")),
            ]))
        }

        let writer = StateWriter(store: store, state: state, logger: logger)
        let identity = BackendIdentity(scheduler: parts.warmer.scheduler, writer: writer, logger: logger)
        let coordinator = WarmCoordinator(parts: parts, identity: identity, writer: writer, logger: logger)
        let watcher = TemplateWatcher(logger: logger)
        // the configured files are watched before the startup warm reads them, so no edit is missed
        // (a failure is logged by the watcher; the templates it could watch stay watched)
        try? watcher.update(WatchSet(files: Dictionary(uniqueKeysWithValues: config.templates.map { ($0.name, [$0.path]) })))
        let gate = ReadinessGate()
        let wake = CheckWake()
        let debouncer = PerKeyDebouncer<String, ContinuousClock>(quiet: config.debounce, maxWait: config.maxWait,
                                                                  clock: ContinuousClock())
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: WatchService(watcher: watcher, dependencies: coordinator.dependencyChanges)),
            .init(service: ShutdownCancelling(EventPump(watcher: watcher, coordinator: coordinator,
                                                        debouncer: debouncer, logger: logger))),
            .init(service: ShutdownCancelling(StartupSequence(coordinator: coordinator, notifier: notifier,
                                                              gate: gate, logger: logger)),
                  successTerminationBehavior: .ignore),
            .init(service: ShutdownCancelling(BackendMonitor(coordinator: coordinator, gate: gate, logger: logger,
                                                             notifier: notifier, wake: wake))),
            .init(service: WarmWorker(coordinator: coordinator, notifier: notifier, logger: logger)),
        ]
        return PipelineAssembly(key: key, coordinator: coordinator, gate: gate, wake: wake, logger: logger,
                                services: services)
    }
}
