import Foundation
import Logging
import ServiceLifecycle

/// Assembles the pipeline's services and runs them until shutdown.
///
/// Order in the group (graceful shutdown runs in reverse, so the worker stops
/// first: STOPPING=1, the request in flight is aborted and the state written):
/// watch → event pump (debounce) → startup → backend monitor → reload → watchdog → worker.
public struct KVWarmDaemon: Sendable {
    public var configPath: String
    public var environment: [String: String]
    public var notifier: Notifier
    public var logger: Logger

    public init(configPath: String, environment: [String: String], notifier: Notifier, logger: Logger) {
        self.configPath = configPath
        self.environment = environment
        self.notifier = notifier
        self.logger = logger
    }

    /// Loads the config and builds fresh parts (also re-reads the API key file).
    public static func loadParts(configPath: String, environment: [String: String],
                                 scheduler: SlotScheduler) throws(ConfigError) -> PipelineParts {
        let config = try ConfigLoader(environment: environment).load(path: configPath)
        let key = try readAPIKey(config)
        let transport = CurlTransport(address: config.backend.address, apiKey: key)
        return PipelineParts(config: config, transport: transport, scheduler: scheduler)
    }

    /// The API key from `backend.api_key_file`, trimmed of surrounding white space.
    public static func readAPIKey(_ config: KVWarmConfig) throws(ConfigError) -> String? {
        guard let path = config.backend.apiKeyFile else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: config.sourcePath, key: "backend.api_key_file", message: "cannot read \(path)")
        }
        let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else {
            throw ConfigError(file: config.sourcePath, key: "backend.api_key_file", message: "\(path) is empty")
        }
        guard !key.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw ConfigError(file: config.sourcePath, key: "backend.api_key_file",
                              message: "\(path) holds more than one line")
        }
        return key
    }

    /// Runs until SIGTERM/SIGINT (exit 0) or a fatal startup condition (its exit code).
    public func run() async -> SysExit {
        let scheduler = SlotScheduler()
        let parts: PipelineParts
        do {
            parts = try Self.loadParts(configPath: configPath, environment: environment, scheduler: scheduler)
        } catch {
            logger.critical("invalid configuration: \(error)", metadata: .stage(.startup, .startupBegin, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("bad_config"),
            ]))
            notifier.failed(status: "invalid configuration: \(error)", errno: 22)
            return .config
        }
        let config = parts.config
        let store = StateStore(directory: config.stateDir)
        var state = WarmState()
        do {
            try store.prepare()
        } catch {
            logger.critical("cannot use state_dir \(config.stateDir): \(error)", metadata: .stage(.startup, .startupBegin))
            notifier.failed(status: "cannot use state_dir \(config.stateDir)", errno: 13)
            return .cantCreate
        }
        // one kvwarm per state directory: a second one would sweep and overwrite the first one's files
        let lock: InstanceLock
        do {
            lock = try InstanceLock.acquire(directory: config.stateDir)
        } catch {
            logger.critical("\(error); not starting", metadata: .stage(.startup, .startupBegin, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("state_dir_locked"),
                LogField.path: .string(config.stateDir),
                LogField.hint: .string("give each kvwarm its own state_dir, or stop the other one"),
            ]))
            notifier.failed(status: "\(error)", errno: 16)  // EBUSY
            return .tempFail
        }
        defer { withExtendedLifetime(lock) {} }
        switch store.load() {
        case .loaded(let s): state = s
        case .absent: break
        case .discarded(let reason, let movedTo):
            logger.warning("state file discarded (\(reason)); moved to \(movedTo ?? "nowhere"); templates re-prefill",
                           metadata: .stage(.startup, .startupBegin))
        }
        // forget templates no longer configured, then sweep the KV files of this instance's templates
        // (configured or recorded) that no record keeps; other names belong to whoever shares the directory
        let names = Set(config.templates.map(\.name))
        let owned = names.union(state.templates.keys)
        state.templates = state.templates.filter { names.contains($0.key) }
        let keep = Set(state.templates.values.compactMap(\.kvFile))
        let removed = parts.persister.sweepOrphans(keep: keep, templates: owned)
        if !removed.isEmpty {
            logger.info("removed \(Counted.of(removed.count, "orphaned KV file"))", metadata: .stage(.persist, .persisted, [
                "FILES": .string(removed.joined(separator: ",")),
            ]))
        }

        let writer = StateWriter(store: store, state: state, logger: logger)
        let identity = BackendIdentity(scheduler: scheduler, writer: writer, logger: logger)
        let coordinator = WarmCoordinator(parts: parts, identity: identity, writer: writer, logger: logger)
        let watcher = TemplateWatcher(logger: logger)
        // the configured files are watched before the startup warm reads them, so no edit is missed
        // (a failure is logged by the watcher; the templates it could watch stay watched)
        try? watcher.update(WatchSet(files: Dictionary(uniqueKeysWithValues: config.templates.map { ($0.name, [$0.path]) })))

        let gate = ReadinessGate()
        let debouncer = PerKeyDebouncer<String, ContinuousClock>(quiet: config.debounce, maxWait: config.maxWait,
                                                                  clock: ContinuousClock())
        let env = environment
        let path = configPath
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: WatchService(watcher: watcher, dependencies: coordinator.dependencyChanges)),
            .init(service: ShutdownCancelling(EventPump(watcher: watcher, coordinator: coordinator,
                                                        debouncer: debouncer, logger: logger))),
            .init(service: ShutdownCancelling(StartupSequence(coordinator: coordinator, notifier: notifier,
                                                              gate: gate, logger: logger)),
                  successTerminationBehavior: .ignore),
            .init(service: ShutdownCancelling(BackendMonitor(coordinator: coordinator, gate: gate, logger: logger))),
            .init(service: ShutdownCancelling(ReloadService(coordinator: coordinator, notifier: notifier, gate: gate,
                                                            logger: logger, load: { () throws(ConfigError) in
                try Self.loadParts(configPath: path, environment: env, scheduler: scheduler)
            }))),
        ]
        if config.metricsFile != nil {
            services.append(.init(service: ShutdownCancelling(MetricsService(coordinator: coordinator, logger: logger))))
        }
        if let ping = WatchdogConfig.fromEnvironment(environment, pid: getpid()) {
            services.append(.init(service: ShutdownCancelling(WatchdogService(
                coordinator: coordinator, notifier: notifier, pingInterval: ping,
                hangAfter: config.watchdogHangAfter, logger: logger))))
        }
        services.append(.init(service: WarmWorker(coordinator: coordinator, notifier: notifier, logger: logger)))

        var groupConfig = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                    logger: Logger(label: "kvwarm.lifecycle", factory: { _ in SwiftLogNoOpLogHandler() }))
        groupConfig.maximumGracefulShutdownDuration = .seconds(3)
        groupConfig.maximumCancellationDuration = .seconds(1)
        let group = ServiceGroup(configuration: groupConfig)
        // `kvwarm status --ready` (a readiness probe) reads this mark once READY=1 was sent
        let readyMark = Task { [gate] in
            await gate.wait()
            if !Task.isCancelled { lock.markReady() }
        }
        defer { readyMark.cancel() }
        do {
            try await group.run()
        } catch let exit as DaemonExit {
            await coordinator.flush()
            return exit.code
        } catch {
            logger.critical("stopped on error: \(error)", metadata: .stage(.shutdown, .shutdown))
            await coordinator.flush()
            return .software
        }
        return .ok
    }
}

/// Wraps a service so graceful shutdown cancels it.
public struct ShutdownCancelling<S: Service>: Service, CustomStringConvertible {
    public let service: S

    public init(_ service: S) { self.service = service }

    public var description: String { "\(S.self)" }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { [service] in try await service.run() }
    }
}
