import Logging

/// Runs the warm queue of one backend: starts each ``TemplatePass``, logs its stage events
/// as they happen and applies its outcome.
///
/// What it owns: the current ``PipelineParts``, the ``WarmQueue`` state machine and its retry
/// timers, the templates' problems (for STATUS and `kvwarm status`) and their dependency sets.
/// The records go to the ``StateWriter``, backend findings to the ``BackendIdentity``, and
/// dependency changes out through ``dependencyChanges``.
public actor WarmCoordinator {
    public private(set) var parts: PipelineParts
    public nonisolated let identity: BackendIdentity
    public nonisolated let writer: StateWriter
    /// The counters of the metrics file.
    public nonisolated let metrics = MetricsRegistry()
    private var machine: WarmQueue
    private let log: StageLog
    /// Sleeps for a retry's delay; throws when cancelled.
    private let sleep: @Sendable (Duration) async throws -> Void
    private var retries: [String: Task<Void, Never>] = [:]
    private var inFlightTask: Task<Void, Never>?
    private var inFlightSince: ContinuousClock.Instant?
    /// Logs every ``progressEvery`` that the pass in flight still runs.
    private var progressTask: Task<Void, Never>?
    static let progressEvery: Duration = .seconds(10)
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// Template name → why it is not warm.
    public private(set) var problems: [String: String] = [:]
    private var dependencies: [String: Set<String>] = [:]
    private let dependencySink: AsyncStream<[String: Set<String>]>.Continuation
    /// Every change of the template → files map, newest only; starts with the configured paths.
    public nonisolated let dependencyChanges: AsyncStream<[String: Set<String>]>
    private var onProgress: (@Sendable (String, PassResult) -> Void)?
    /// The slot of every warm until ``takeWarmedSlots()`` is called (the startup warm), in
    /// order; nil afterwards, so a long-running daemon keeps no list.
    private var warmedSlots: [Int]? = []
    /// The queue when the worker was told to stop (named when the pass in flight is cut short).
    private var waitingAtStop: [String] = []
    /// A keep-warm round holds the slots (``beginKeepWarm()``): passes wait for its end.
    private var keepWarmActive = false
    /// The pass the machine started while a keep-warm round held the slots.
    private var deferredStart: String?

    public init(parts: PipelineParts, identity: BackendIdentity, writer: StateWriter, logger: Logger,
                backoff: Backoff = Backoff(),
                sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }) {
        self.parts = parts
        self.identity = identity
        self.writer = writer
        self.sleep = sleep
        machine = WarmQueue(backoff: backoff)
        log = StageLog(logger: logger)
        (dependencyChanges, dependencySink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        for t in parts.config.templates { dependencies[t.name] = [t.path] }
        dependencySink.yield(dependencies)
    }

    /// Called after every pass with its result.
    public func setProgressObserver(_ observer: (@Sendable (String, PassResult) -> Void)?) { onProgress = observer }

    /// Queues templates for a pass (names not configured are ignored).
    /// - Parameter announce: log "queued behind" for each name that now waits for another pass
    ///   (file events; startup, reload and backend restarts queue everything and say so once).
    public func enqueue<S: Sequence>(_ names: S, announce: Bool = false) where S.Element == String {
        let before = Set(machine.queue)
        perform(machine.enqueue(names.filter { parts.config.template(named: $0) != nil }))
        if Set(machine.queue) != before { metrics.touch() }
        guard announce, let current = machine.inFlight, let since = inFlightSince else { return }
        for n in machine.queue where !before.contains(n) {
            log.queued(n, behind: current, for: since.duration(to: .now))
        }
    }

    /// Queues every configured template.
    public func enqueueAll() { enqueue(parts.config.templates.map(\.name)) }

    /// Returns when nothing is queued or in flight (or the worker has stopped).
    public func drained() async {
        if machine.isIdle || machine.stopped { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    /// Runs passes until the calling task is cancelled; then cancels the pass in flight, waits
    /// for it and writes the state.
    public func runWorker() async {
        perform(machine.start())
        let (cancelled, cancel) = AsyncStream<Void>.makeStream()
        await withTaskCancellationHandler {
            for await _ in cancelled {}
        } onCancel: { cancel.finish() }
        waitingAtStop = machine.queue
        perform(machine.stop())
        let last = inFlightTask
        await last?.value
        await writer.flush(onlyIfChanged: true)
        resumeDrainWaiters()
    }

    /// Whether the worker has stopped (shutdown).
    public var stopped: Bool { machine.stopped }

    /// The slots warmed into so far, in order (for ``SlotPolicyGuard``); stops recording.
    public func takeWarmedSlots() -> [Int] {
        defer { warmedSlots = nil }
        return warmedSlots ?? []
    }

    /// The templates keeping warm may restore: a KV file saved on the current backend, restores
    /// that take there, no open problem.
    public func keepWarmCandidates() async -> [KeepWarmPlanner.Candidate] {
        guard let digest = await identity.fingerprintDigest, !(await identity.restoreIneffective.contains(digest))
        else { return [] }
        let state = writer.state
        let templates = parts.config.templates
        var candidates: [KeepWarmPlanner.Candidate] = []
        // by index: this runs on every check, and copying each TemplateSpec costs more than the lookups
        for i in templates.indices {
            let name = templates[i].name
            guard problems[name] == nil, let r = state.templates[name], r.fingerprint == digest,
                  let file = r.kvFile, let n = r.promptTokens, n > 0 else { continue }
            candidates.append(KeepWarmPlanner.Candidate(name: name, kvFile: file, tokens: n))
        }
        return candidates
    }

    private func countForMetrics(_ name: String, _ outcome: PassOutcome, elapsed: Double) {
        switch outcome.result {
        case .warmed(let mode):
            let ms = outcome.events.lazy.compactMap { e -> Double? in
                if case .warmed(let r, _) = e { return r.durationMS } else { return nil }
            }.first
            metrics.warmed(name, mode: mode.rawValue, ok: outcome.record?.lastError == nil, seconds: ms.map { $0 / 1000 } ?? elapsed)
        case .backendFailed(.cancelled), .removed: metrics.touch()
        case .backendFailed, .templateFailed: metrics.warmed(name, mode: nil, ok: false, seconds: elapsed)
        }
    }

    /// Each configured template's state, last warm and counters, for the metrics file.
    public func metricsTemplates() async -> [MetricsSnapshot.Template] {
        let ineffective = await identity.restoreIneffective
        let unloaded = await identity.modelUnloaded
        let state = writer.state
        let waiting = Set(machine.queue).union(machine.inFlight.map { [$0] } ?? [])
        return parts.config.templates.map { t in
            let r = state.templates[t.name]
            let s: MetricsSnapshot.State
            if unloaded { s = .unloaded }
            else if waiting.contains(t.name) { s = .pending }
            else if problems[t.name] != nil { s = .failed }
            else if r?.digest == nil { s = .never }
            else if let fp = r?.fingerprint, ineffective.contains(fp) { s = .ineffective }
            else { s = .warm }
            var m = MetricsSnapshot.Template(name: t.name, backend: t.backend, model: t.model ?? "", state: s)
            metrics.fill(&m)
            if let r, r.warmedAt != nil {
                m.lastMode = r.mode?.rawValue
                m.lastDurationMS = r.warmMS
                m.lastPromptTokens = r.promptTokens
                m.lastCachedTokens = r.cachedTokens
                m.lastWarmedAt = r.warmedAt
            }
            return m
        }
    }

    /// Passes completed so far and the template in flight, for STATUS.
    public func progress() -> (done: Int, current: String?) { (machine.completed, machine.inFlight) }

    /// How long the pass in flight has been running (nil when idle): the watchdog's view of a hang.
    public func inFlightAge() -> Duration? { inFlightSince.map { $0.duration(to: .now) } }

    /// Replaces the configuration (reload); returns the templates that are new or changed.
    public func replace(parts newParts: PipelineParts) -> Set<String> {
        let old = Dictionary(uniqueKeysWithValues: parts.config.templates.map { ($0.name, $0) })
        parts = newParts
        var changed = Set<String>()
        var newDeps: [String: Set<String>] = [:]
        for t in newParts.config.templates {
            if old[t.name] != t { changed.insert(t.name) }
            newDeps[t.name] = old[t.name] == t ? (dependencies[t.name] ?? [t.path]) : [t.path]
        }
        let removed = Set(old.keys).subtracting(newParts.config.templates.map(\.name))
        for r in removed { problems[r] = nil }
        perform(machine.remove(removed))
        dependencies = newDeps
        dependencySink.yield(dependencies)
        if !removed.isEmpty {
            // their KV files go now: after this nothing records that this instance owns them
            for r in removed { if let f = writer.state.templates[r]?.kvFile { newParts.persister.remove(f) } }
            writer.update { s in for r in removed { s.templates[r] = nil } }
            writer.writeSoon()
        }
        return changed
    }

    /// Writes the state file now.
    public func flush() async { await writer.flush() }

    /// Carries out the machine's actions; `failure` is the error a retry is scheduled for.
    private func perform(_ actions: [WarmQueue.Action], failure: BackendError? = nil) {
        for a in actions {
            switch a {
            case .startPass(let name): start(name)
            case .scheduleRetry(let name, let delay, let attempt):
                log.retrying(name, reason: failure?.reason ?? "retry", after: delay, attempt: attempt)
                let sleep = self.sleep
                retries[name] = Task { [weak self] in
                    do { try await sleep(delay) } catch { return }
                    await self?.retryFired(name)
                }
            case .cancelRetry(let name): retries.removeValue(forKey: name)?.cancel()
            case .cancelInFlight: inFlightTask?.cancel()
            case .drained:
                writer.writeSoon()
                resumeDrainWaiters()
            }
        }
    }

    private func retryFired(_ name: String) {
        retries[name] = nil
        perform(machine.retryFired(name))
    }

    private func resumeDrainWaiters() {
        for w in drainWaiters { w.resume() }
        drainWaiters = []
    }

    /// Lets a keep-warm round use the slots: true when no pass is queued or running, and then no
    /// pass starts until ``endKeepWarm()``, so the two never pick the same idle slot.
    public func beginKeepWarm() -> Bool {
        guard machine.isIdle, !machine.stopped, !keepWarmActive else { return false }
        keepWarmActive = true
        return true
    }

    /// Ends the round begun with ``beginKeepWarm()``; a pass queued meanwhile starts now.
    public func endKeepWarm() {
        keepWarmActive = false
        // after a stop the deferred pass never runs: it warms at the next start
        if let name = deferredStart {
            deferredStart = nil
            if !machine.stopped { start(name) }
        }
    }

    private func start(_ name: String) {
        if keepWarmActive {
            deferredStart = name
            return
        }
        inFlightSince = .now
        guard let spec = parts.config.template(named: name) else {
            inFlightTask = Task { self.passEnded(name, PassOutcome(result: .removed, dependencies: [])) }  // isolated to self
            return
        }
        let pass = TemplatePass(parts: parts)
        let previous = writer.state.templates[name]
        let identity = self.identity
        let log = self.log
        let started = ContinuousClock.now
        progressTask = Task {
            while (try? await Task.sleep(for: Self.progressEvery)) != nil {
                log.stillWarming(name, for: started.duration(to: .now))
            }
        }
        inFlightTask = Task {
            let input = TemplatePass.Input(spec: spec, previous: previous, fingerprint: await identity.fingerprint,
                                           restoreIneffective: await identity.restoreIneffective)
            let outcome = await pass.run(input) { log.write($0, template: name) }
            await identity.apply(outcome)
            await self.passEnded(name, outcome)
        }
    }

    private func passEnded(_ name: String, _ outcome: PassOutcome) {
        let elapsed = inFlightSince.map { Double($0.duration(to: .now).milliseconds) / 1000 } ?? 0
        countForMetrics(name, outcome, elapsed: elapsed)
        progressTask?.cancel()
        progressTask = nil
        inFlightTask = nil
        inFlightSince = nil
        let configured = parts.config.template(named: name) != nil
        if configured, let rec = outcome.record { writer.update { $0.templates[name] = rec } }
        if configured, dependencies[name] != outcome.dependencies, !outcome.dependencies.isEmpty {
            dependencies[name] = outcome.dependencies
            dependencySink.yield(dependencies)
        }
        for case .warmed(let report, _) in outcome.events {
            warmedSlots?.append(report.slot)
            if configured { identity.keeper.placed(name, slot: report.slot, tokens: report.promptTokens, prompt: outcome.prompt) }
        }
        let previousProblem = problems[name]
        switch outcome.result {
        // a warm that could not be saved counts as failed: it is warm in memory only, and
        // prefills again after the next restart (its record carries the save error)
        case .warmed: problems[name] = outcome.record?.lastError
        case .templateFailed(let why): problems[name] = why  // the watcher brings it back when the file is fixed
        case .backendFailed(.cancelled):
            if machine.stopped { log.cutShort(name, waiting: waitingAtStop) }
        case .removed: break
        case .backendFailed(let e): problems[name] = e.description
        }
        if let previousProblem, case .warmed = outcome.result, problems[name] == nil {
            log.recovered(name, after: previousProblem)
        }
        let actions = machine.passEnded(name, outcome.result, random: Double.random(in: 0...1))
        onProgress?(name, outcome.result)
        if case .backendFailed(let e) = outcome.result { perform(actions, failure: e) } else { perform(actions) }
    }
}
