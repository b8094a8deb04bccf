import Foundation
import Logging

/// Runs each template through hash-compare → render → warm → persist.
///
/// One warm runs at a time (llama-server shares its cores between slots, so
/// parallel prefills only slow each other down). A template that changes while
/// its warm is in flight is queued once more; since the snapshot is read when
/// its turn comes, the latest content wins and at most one follow-up runs.
/// Transient failures retry with capped exponential backoff and jitter.
///
/// Passes change the in-memory state; `state.json` is written when the queue
/// runs empty, otherwise at most ``stateWriteInterval`` after a change (a
/// timer on the actor, so a long pass in flight does not hold back the records
/// of the passes before it), and on ``flush()``. So a single edit is
/// on disk as soon as its pass ends, and a startup warm of N templates does
/// not rewrite an N-record file N times. A crash loses at most the records of
/// the last interval: their KV files are then orphans, swept at the next
/// start, and those templates prefill again.
public actor WarmCoordinator {
    /// The longest a change of the state waits to be written while the queue is not empty.
    public static let stateWriteInterval: Duration = .seconds(1)

    /// The parts the coordinator drives; replaced as a whole on reload.
    public struct Parts: Sendable {
        public var config: KVWarmConfig
        public var client: LlamaClient
        public var loader: SnapshotLoader
        public var builder: WarmPromptBuilder
        public var warmer: TemplateWarmer
        public var persister: SlotPersister

        public init(config: KVWarmConfig, transport: any HTTPTransport, scheduler: SlotScheduler) {
            self.config = config
            client = LlamaClient(transport: transport, timeout: config.backend.timeout)
            loader = SnapshotLoader(includeRoots: config.includeRoots, maxBytes: config.maxTemplateBytes)
            builder = WarmPromptBuilder(client: client)
            warmer = TemplateWarmer(client: client, scheduler: scheduler)
            persister = SlotPersister(client: client, slotSaveDir: config.backend.slotSaveDir)
        }
    }

    /// How one pass of a template ended.
    public enum Result: Sendable, Equatable {
        case warmed(WarmMode)
        case templateFailed(String)
        case backendFailed(BackendError)
        case removed
    }

    public private(set) var parts: Parts
    private let store: StateStore
    private let logger: Logger
    private let backoff: Backoff
    public private(set) var state: WarmState
    public private(set) var fingerprint: BackendFingerprint?

    private var queue: [String] = []
    private var inFlight: String?
    private var inFlightTask: Task<Result, Never>?
    private var attempts: [String: Int] = [:]
    private var retries: [String: Task<Void, Never>] = [:]
    /// Template name → why it is not warm, for STATUS and `kvwarm status`.
    public private(set) var problems: [String: String] = [:]
    private var dependencies: [String: Set<String>] = [:]
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private let wakeStream: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private var credentialReported = false
    private var completedPasses = 0
    private var inFlightSince: ContinuousClock.Instant?
    /// The state has changes not yet in `state.json`.
    private var stateDirty = false
    /// Writes the state ``stateWriteInterval`` after it first changed, unless the queue drains sooner;
    /// it runs while a long pass is in flight, so earlier passes' records do not wait for it.
    private var pendingStateWrite: Task<Void, Never>?
    /// Bumped by every write, so a timer that fires after a write has been made is ignored.
    private var stateWrites = 0
    /// Called whenever the set of files a template depends on changes.
    private var onDependencies: (@Sendable ([String: Set<String>]) -> Void)?
    /// Called after every pass (progress for readiness and the watchdog).
    private var onProgress: (@Sendable (String, Result) -> Void)?

    public init(parts: Parts, store: StateStore, state: WarmState, logger: Logger,
                backoff: Backoff = Backoff()) {
        self.parts = parts
        self.store = store
        self.state = state
        self.logger = logger
        self.backoff = backoff
        (wakeStream, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        for t in parts.config.templates { dependencies[t.name] = [t.path] }
    }

    public func setObservers(dependencies: (@Sendable ([String: Set<String>]) -> Void)?,
                             progress: (@Sendable (String, Result) -> Void)?) {
        onDependencies = dependencies
        onProgress = progress
        dependencies?(self.dependencies)
    }

    // MARK: - queue

    /// Queues templates for a pass; a template already queued stays queued once.
    public func enqueue<S: Sequence>(_ names: S) where S.Element == String {
        var added = false
        for n in names where parts.config.template(named: n) != nil && !queue.contains(n) {
            queue.append(n)
            retries.removeValue(forKey: n)?.cancel()
            added = true
        }
        if added { wake.yield() }
    }

    /// Queues every configured template.
    public func enqueueAll() { enqueue(parts.config.templates.map(\.name)) }

    /// Returns when the queue is empty and nothing is in flight.
    public func drained() async {
        if queue.isEmpty && inFlight == nil { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    /// Processes queued templates until the task is cancelled.
    public func runWorker() async {
        var it = wakeStream.makeAsyncIterator()
        while !Task.isCancelled {
            if queue.isEmpty {
                for w in drainWaiters { w.resume() }
                drainWaiters = []
                if await it.next() == nil { break }
                continue
            }
            let name = queue.removeFirst()
            inFlight = name
            inFlightSince = .now
            let task = Task { await self.pass(name) }
            inFlightTask = task
            let result = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
            inFlight = nil
            inFlightSince = nil
            inFlightTask = nil
            afterPass(name, result)
            if queue.isEmpty { writeStateIfChanged() }
        }
        writeStateIfChanged()
        stopped = true
        for w in drainWaiters { w.resume() }
        drainWaiters = []
    }

    /// Whether the worker has stopped (shutdown).
    public private(set) var stopped = false

    /// Passes completed so far and the template in flight, for STATUS.
    public func progress() -> (done: Int, current: String?) { (completedPasses, inFlight) }

    /// How long the pass in flight has been running (nil when idle): the watchdog's view of a hang.
    public func inFlightAge() -> Duration? { inFlightSince.map { $0.duration(to: .now) } }

    /// Cancels the warm in flight (its HTTP request is aborted).
    public func cancelInFlight() { inFlightTask?.cancel() }

    private func afterPass(_ name: String, _ result: Result) {
        completedPasses += 1
        switch result {
        case .warmed:
            attempts[name] = 0
            problems[name] = nil
        case .templateFailed(let why):
            problems[name] = why  // the watcher brings it back when the file is fixed
        case .backendFailed(.cancelled), .removed:
            break
        case .backendFailed(let e):
            problems[name] = e.description
            scheduleRetry(name, error: e)
        }
        onProgress?(name, result)
    }

    private func scheduleRetry(_ name: String, error: BackendError) {
        let n = attempts[name, default: 0]
        attempts[name] = n + 1
        let delay = backoff.delay(attempt: n, random: Double.random(in: 0...1))
        logger.info("retrying after backoff", metadata: Logger.Metadata.stage(.warm, .warmFailed, template: name).merging([
            LogField.reason: .string(error.reason), "RETRY_IN_MS": .stringConvertible(Int(delay.milliseconds)),
            "ATTEMPT": .stringConvertible(n + 1),
        ]) { $1 })
        retries[name]?.cancel()
        retries[name] = Task { [weak self] in
            do { try await Task.sleep(for: delay) } catch { return }
            await self?.retryFired(name)
        }
    }

    private func retryFired(_ name: String) {
        retries[name] = nil
        enqueue([name])
    }

    // MARK: - configuration and backend

    /// Replaces the configuration (reload); returns the templates that are new or changed.
    public func replace(parts newParts: Parts) -> Set<String> {
        let old = Dictionary(uniqueKeysWithValues: parts.config.templates.map { ($0.name, $0) })
        parts = newParts
        var changed = Set<String>()
        var newDeps: [String: Set<String>] = [:]
        for t in newParts.config.templates {
            if old[t.name] != t { changed.insert(t.name) }
            newDeps[t.name] = old[t.name] == t ? (dependencies[t.name] ?? [t.path]) : [t.path]
        }
        let removed = Set(old.keys).subtracting(newParts.config.templates.map(\.name))
        for r in removed {
            retries.removeValue(forKey: r)?.cancel()
            problems[r] = nil
            state.templates[r] = nil
        }
        queue.removeAll { removed.contains($0) }
        if let f = inFlight, removed.contains(f) { inFlightTask?.cancel() }
        dependencies = newDeps
        onDependencies?(dependencies)
        if !removed.isEmpty { saveState() }
        return changed
    }

    /// Records the backend fingerprint; returns true when it differs from the last one (ignoring the build).
    @discardableResult
    public func updateFingerprint(_ fp: BackendFingerprint) -> Bool {
        let previous = fingerprint ?? state.backend
        fingerprint = fp
        guard let previous else {
            state.backend = fp
            return false
        }
        let diffs = fp.differences(from: previous)
        if !diffs.isEmpty {
            logger.notice("backend fingerprint changed", metadata: Logger.Metadata.stage(.backend, .backendChanged).merging([
                "CHANGED": .string(diffs.joined(separator: ",")),
                LogField.hint: .string(fp.digest == previous.digest
                    ? "only the build changed: KV files stay valid"
                    : "KV files of the old backend will not be restored; templates re-prefill"),
            ]) { $1 })
            state.backend = fp
            saveState()
        }
        return fp.digest != previous.digest
    }

    /// Forgets which slot holds which template (the backend restarted).
    public func backendRestarted() { parts.warmer.scheduler.reset() }

    /// Forgets the fingerprint (and slot assignments) so the next pass reads it again.
    public func invalidateFingerprint() {
        fingerprint = nil
        parts.warmer.scheduler.reset()
    }

    /// Writes the state file now.
    public func flush() { saveState() }

    /// Writes the state file if a pass changed it since the last write.
    private func writeStateIfChanged() {
        if stateDirty { saveState() }
    }

    /// Notes a change of the in-memory state and makes sure a write follows within ``stateWriteInterval``.
    private func stateChanged() {
        stateDirty = true
        guard pendingStateWrite == nil else { return }
        let generation = stateWrites
        pendingStateWrite = Task { [weak self] in
            do { try await Task.sleep(for: Self.stateWriteInterval) } catch { return }
            await self?.pendingStateWriteFired(generation)
        }
    }

    private func pendingStateWriteFired(_ generation: Int) {
        guard generation == stateWrites else { return }  // written meanwhile
        pendingStateWrite = nil
        writeStateIfChanged()
    }

    // MARK: - one pass

    private func fields(_ stage: Stage, _ id: MessageID, _ name: String,
                        _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        Logger.Metadata.stage(stage, id, template: name).merging(extra) { $1 }
    }

    private func pass(_ name: String) async -> Result {
        guard let spec = parts.config.template(named: name) else { return .removed }
        let p = parts

        // hash
        let snapshot: TemplateSnapshot
        switch p.loader.load(spec) {
        case .failure(let problem):
            setDependencies(name, [spec.path])
            logger.error("template cannot be used: \(problem)", metadata: fields(.hash, .templateInvalid, name, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(problem.reason),
                LogField.path: .string(spec.path),
            ]))
            record(name) { $0.lastError = problem.description; $0.lastErrorAt = Date() }
            return .templateFailed(problem.description)
        case .success(let s):
            snapshot = s
        }
        setDependencies(name, snapshot.dependencyPaths)

        var fp: BackendFingerprint
        if let known = fingerprint {
            fp = known
        } else {
            do {
                fp = try await BackendFingerprint.read(from: p.client, kvTag: p.config.backend.kvTag)
            } catch {
                return backendFailure(name, .warm, error)
            }
            updateFingerprint(fp)
        }
        let previous = state.templates[name]
        func decide(_ fp: BackendFingerprint) -> WarmPlan {
            WarmPlanner.plan(
                digest: snapshot.digest, fingerprint: fp.digest, record: previous,
                restoreIneffective: state.restoreIneffective.contains(fp.digest),
                kvFileExists: { p.persister.exists($0) })
        }
        var plan = decide(fp)
        if case .restore = plan {
            // the cached fingerprint may predate a server swap the monitor has not seen yet:
            // a restore must never load a KV file into another model, so confirm it now
            do {
                let fresh = try await BackendFingerprint.read(from: p.client, kvTag: p.config.backend.kvTag)
                if fresh.digest != fp.digest {
                    updateFingerprint(fresh)
                    fp = fresh
                    plan = decide(fp)
                }
            } catch {
                return backendFailure(name, .warm, error)
            }
        }
        let fpDigest = fp.digest
        let unchanged = previous?.digest == snapshot.digest
        var hashFields: Logger.Metadata = [
            LogField.outcome: .string(unchanged ? Outcome.unchanged.rawValue : Outcome.ok.rawValue),
            LogField.digest: .string(String(snapshot.digest.prefix(12))),
            LogField.mode: .string(plan.mode.rawValue),
        ]
        if case .prefill(let why) = plan { hashFields[LogField.reason] = .string(why) }
        logger.info("\(unchanged ? "content unchanged" : "content differs"): \(plan.mode.rawValue)",
                    metadata: fields(.hash, .hashCompared, name, hashFields))

        // render
        let rendered = TemplateRenderer.render(snapshot)
        let prompt: String
        do {
            prompt = try await p.builder.prefix(rendered, spec: spec)
        } catch {
            switch error {
            case .backend(let e): return backendFailure(name, .render, e)
            case .sentinelLost:
                let why = "the server's chat template dropped the message; use \"endpoint\": \"completion\""
                logger.error("\(why)", metadata: fields(.render, .renderFailed, name, [
                    LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("sentinel_lost"),
                ]))
                record(name) { $0.lastError = why; $0.lastErrorAt = Date() }
                return .templateFailed(why)
            }
        }
        logger.debug("rendered warm prompt", metadata: fields(.render, .rendered, name, [
            LogField.outcome: .string(Outcome.ok.rawValue), "PROMPT_CHARS": .stringConvertible(prompt.count),
            "PLACEHOLDER": .string(rendered.hasPlaceholder ? "yes" : "no"),
        ]))

        // warm
        let report: WarmReport
        do {
            switch plan {
            case .prefill: report = try await p.warmer.prefill(prompt, template: name)
            case .restore(let file): report = try await p.warmer.restore(prompt, fileName: file, template: name)
            }
        } catch {
            return backendFailure(name, .warm, error)
        }
        var warmFields: Logger.Metadata = [
            LogField.outcome: .string(Outcome.ok.rawValue), LogField.mode: .string(report.mode.rawValue),
            LogField.digest: .string(String(snapshot.digest.prefix(12))),
            LogField.durationMS: .stringConvertible(Int(report.durationMS.rounded())),
            LogField.promptTokens: .stringConvertible(report.promptTokens),
            LogField.cachedTokens: .stringConvertible(report.cachedTokens),
            LogField.slot: .stringConvertible(report.slot),
        ]
        switch report.fallback {
        case .ineffective(let cached, let of):
            if !state.restoreIneffective.contains(fpDigest) { state.restoreIneffective.append(fpDigest) }
            logger.warning("restore did not take: the probe reused \(cached) of \(of) tokens; prefilled instead",
                           metadata: fields(.warm, .restoreIneffective, name, [
                               LogField.outcome: .string(Outcome.ineffective.rawValue),
                               LogField.reason: .string("restore_ineffective"),
                               LogField.hint: .string("serve SWA models (e.g. Gemma 3) with --swa-full to make slot restores work; kvwarm will prefill under this backend from now on"),
                               LogField.cachedTokens: .stringConvertible(cached),
                               LogField.promptTokens: .stringConvertible(of),
                           ]))
        case .refused(let why):
            warmFields[LogField.reason] = .string("restore_refused")
            warmFields[LogField.hint] = .string("restore refused (\(why)); prefilled instead")
        case nil:
            break
        }
        logger.info("warm \(report.mode.rawValue): \(report.cachedTokens)/\(report.promptTokens) tokens cached in \(Int(report.durationMS)) ms",
                    metadata: fields(.warm, .warmDone, name, warmFields))
        if report.promptTokens < 64 {
            logger.warning("only \(report.promptTokens) tokens precede <{message}>: warming saves little",
                           metadata: fields(.render, .rendered, name, [
                               LogField.promptTokens: .stringConvertible(report.promptTokens),
                               LogField.hint: .string("move <{message}> towards the end of the template"),
                           ]))
        }

        // persist
        var rec = previous ?? WarmRecord()
        rec.digest = snapshot.digest
        rec.fingerprint = fpDigest
        rec.tokens = report.promptTokens
        rec.mode = report.mode
        rec.promptN = report.processedTokens
        rec.cacheN = report.cachedTokens
        rec.warmMS = report.durationMS
        rec.warmedAt = Date()
        rec.lastError = nil
        rec.lastErrorAt = nil
        if report.mode == .prefill {
            let fileName = SlotFileNaming.fileName(template: name, digest: snapshot.digest)
            let warmer = p.warmer
            do {
                let saved = try await p.persister.save(
                    slot: report.slot, fileName: fileName, expectedTokens: report.promptTokens,
                    redo: { () async throws(BackendError) -> Int in try await warmer.prefill(prompt, template: name).slot })
                if let old = previous?.kvFile, old != fileName { p.persister.remove(old) }
                rec.kvFile = saved.fileName
                rec.saveMS = saved.durationMS
                logger.info("saved \(saved.tokens) tokens to \(saved.fileName)", metadata: fields(.persist, .persisted, name, [
                    LogField.outcome: .string(Outcome.ok.rawValue), LogField.kvFile: .string(saved.fileName),
                    LogField.promptTokens: .stringConvertible(saved.tokens),
                    LogField.durationMS: .stringConvertible(Int(saved.durationMS.rounded())),
                ]))
            } catch {
                if case .backend(.cancelled) = error { return .backendFailed(.cancelled) }
                rec.kvFile = nil
                rec.lastError = "KV save failed: \(error)"
                rec.lastErrorAt = Date()
                var hint = "the template is warm in memory but will re-prefill after a restart"
                if case .backend(.unsupported) = error { hint = "start llama-server with --slot-save-path to let kvwarm restore after restarts" }
                logger.error("KV save failed: \(error)", metadata: fields(.persist, .persistFailed, name, [
                    LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
                    LogField.hint: .string(hint),
                ]))
            }
        }
        state.templates[name] = rec
        stateChanged()
        return .warmed(report.mode)
    }

    private func backendFailure(_ name: String, _ stage: Stage, _ error: BackendError) -> Result {
        if error == .cancelled { return .backendFailed(.cancelled) }
        if error.isTransient { fingerprint = nil }  // a restarted server may be another one
        let id: MessageID = error == .unauthorized ? .credentialRejected : .warmFailed
        var meta = fields(stage, id, name, [
            LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(error.reason),
        ])
        if error == .unauthorized {
            meta[LogField.hint] = .string("set backend.api_key_file to the key llama-server was started with (--api-key)")
            if credentialReported {
                logger.debug("\(error)", metadata: meta)
            } else {
                credentialReported = true
                logger.error("\(error)", metadata: meta)
            }
        } else {
            logger.error("\(error)", metadata: meta)
        }
        record(name) { $0.lastError = error.description; $0.lastErrorAt = Date() }
        stateChanged()
        return .backendFailed(error)
    }

    private func record(_ name: String, _ update: (inout WarmRecord) -> Void) {
        var r = state.templates[name] ?? WarmRecord()
        update(&r)
        state.templates[name] = r
        stateChanged()
    }

    private func setDependencies(_ name: String, _ paths: Set<String>) {
        guard dependencies[name] != paths else { return }
        dependencies[name] = paths
        onDependencies?(dependencies)
    }

    private func saveState() {
        stateDirty = false
        stateWrites += 1
        pendingStateWrite?.cancel()
        pendingStateWrite = nil
        do {
            try store.save(state)
        } catch {
            logger.error("cannot write the state file: \(error)", metadata: Logger.Metadata.stage(.persist, .persistFailed).merging([
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("state_write"),
                LogField.path: .string(store.path),
            ]) { $1 })
        }
    }
}
