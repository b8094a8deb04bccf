#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle

/// Assembles the pipelines' services and runs them until shutdown.
///
/// Order in the group (graceful shutdown runs in reverse, so the workers stop
/// first: STOPPING=1, the request in flight is aborted and the state written):
/// per pipeline watch → event pump (debounce) → startup → backend monitor; then reload →
/// router events → metrics → watchdog → every pipeline's worker.
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

    /// The parts of one pipeline's configuration view (reads its API key file).
    public static func parts(_ view: KVWarmConfig, model: String?,
                             scheduler: SlotScheduler) throws(ConfigError) -> PipelineParts {
        let key = try readAPIKey(view)
        let transport = CurlTransport(address: view.backend.address, apiKey: key)
        return PipelineParts(config: view, transport: transport, scheduler: scheduler, model: model)
    }

    /// Loads the config and builds the parts of every pipeline; `schedulers` gives each its slot
    /// scheduler (kept across reloads).
    public static func loadAllParts(configPath: String, environment: [String: String],
                                    schedulers: [PipelineKey: SlotScheduler]) throws(ConfigError)
        -> [PipelineKey: PipelineParts] {
        let config = try ConfigLoader(environment: environment).load(path: configPath)
        var out: [PipelineKey: PipelineParts] = [:]
        for key in config.pipelines {
            out[key] = try parts(config.view(for: key), model: key.model, scheduler: schedulers[key] ?? SlotScheduler())
        }
        return out
    }

    /// The API key from `backend.api_key_file`, trimmed of surrounding white space.
    public static func readAPIKey(_ config: KVWarmConfig) throws(ConfigError) -> String? {
        guard let path = config.backend.apiKeyFile else { return nil }
        guard let data = FileSystem.contents(path) else {
            throw ConfigError(file: config.sourcePath, key: "backend.api_key_file", message: "cannot read \(path)")
        }
        let key = String(decoding: data, as: UTF8.self).trimmingWhiteSpace()
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
    ///
    /// One pipeline per backend (and per model of a router), each with its own services; with
    /// more than the default one, their notifications go through a ``ReadinessAggregator``.
    public func run() async -> SysExit {
        let config: KVWarmConfig
        var all: [PipelineKey: PipelineParts] = [:]
        do {
            config = try ConfigLoader(environment: environment).load(path: configPath)
            for key in config.pipelines {
                all[key] = try Self.parts(config.view(for: key), model: key.model, scheduler: SlotScheduler())
            }
        } catch {
            logger.critical("invalid configuration: \(error)", metadata: .stage(.startup, .startupBegin, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("bad_config"),
            ]))
            notifier.failed(status: "invalid configuration: \(error)", errno: 22)
            return .config
        }
        let keys = config.pipelines
        do {
            try StateStore(directory: config.stateDir).prepare()
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

        // the default pipeline alone talks to systemd directly, as kvwarm did before it had several
        let aggregator = keys.count == 1 && keys[0].isDefault
            ? nil : ReadinessAggregator(pipelines: keys, base: notifier.transport)
        var pipelines: [PipelineAssembly] = []
        do {
            for key in keys {
                let n = aggregator.map { Notifier(transport: $0.transport(for: key)) } ?? notifier
                pipelines.append(try PipelineAssembly.build(key: key, parts: all[key]!, stateDir: config.stateDir,
                                                            notifier: n, logger: logger))
            }
        } catch {
            logger.critical("cannot use state_dir \(config.stateDir): \(error)", metadata: .stage(.startup, .startupBegin))
            notifier.failed(status: "cannot use state_dir \(config.stateDir)", errno: 13)
            return .cantCreate
        }
        let gate = aggregator?.gate ?? pipelines[0].gate
        let coordinators = pipelines.map(\.coordinator)
        let env = environment
        let path = configPath
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // services of every pipeline, workers last (graceful shutdown runs in reverse: workers stop first)
        for p in pipelines { services += p.services.dropLast() }
        services.append(.init(service: ShutdownCancelling(ReloadService(
            pipelines: Dictionary(uniqueKeysWithValues: pipelines.map { ($0.key, $0.coordinator) }),
            notifier: notifier, gate: gate, logger: logger,
            load: { (schedulers: [PipelineKey: SlotScheduler]) throws(ConfigError) in
                try Self.loadAllParts(configPath: path, environment: env, schedulers: schedulers)
            }, recorder: ReloadRecorder(directory: config.stateDir)))))
        // one event stream per router, waking the monitors of its models
        let routed = pipelines.filter { $0.key.model != nil }
        for (backend, members) in Dictionary(grouping: routed, by: \.key.backend).sorted(by: { $0.key < $1.key }) {
            let view = all[members[0].key]!.config
            let apiKey = (try? Self.readAPIKey(view)) ?? nil
            services.append(.init(service: ShutdownCancelling(RouterEvents(
                transport: CurlTransport(address: view.backend.address, apiKey: apiKey),
                wakes: Dictionary(uniqueKeysWithValues: members.map { ($0.key.model!, $0.wake) }),
                logger: PipelineAssembly.logger(logger, PipelineKey(backend: backend))))))
        }
        if config.metricsFile != nil {
            services.append(.init(service: ShutdownCancelling(MetricsService(coordinators: coordinators, logger: logger))))
        }
        if let ping = WatchdogConfig.fromEnvironment(environment, pid: getpid()) {
            services.append(.init(service: ShutdownCancelling(WatchdogService(
                coordinators: coordinators, notifier: notifier, pingInterval: ping,
                hangAfter: config.watchdogHangAfter, logger: logger))))
        }
        for p in pipelines { services.append(p.services.last!) }

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
            for c in coordinators { await c.flush() }
            return exit.code
        } catch {
            logger.critical("stopped on error: \(error)", metadata: .stage(.shutdown, .shutdown))
            for c in coordinators { await c.flush() }
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
