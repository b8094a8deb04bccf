import FoundationEssentials

/// One template through hash-compare → render → warm → persist.
///
/// ``run(_:emit:)`` talks to the server and to the slot directory (it saves the new
/// KV file and removes the one it replaces) but changes no state of kvwarm's
/// and writes no log: each ``StageEvent`` goes to `emit` as it happens (so a
/// log follows the pass live) and, with everything else it found out, comes
/// back in a ``PassOutcome`` for the caller to apply.
public struct TemplatePass: Sendable {
    /// Below this many tokens before the message a warm saves little; the pass says so.
    public static let fewTokens = 64

    /// What the pass starts from.
    public struct Input: Sendable {
        public var spec: TemplateSpec
        /// The template's record from the state.
        public var previous: WarmRecord?
        /// The backend fingerprint believed current; nil makes the pass read it.
        public var fingerprint: BackendFingerprint?
        /// Fingerprint digests under which restores were seen not to take.
        public var restoreIneffective: Set<String>

        public init(spec: TemplateSpec, previous: WarmRecord?, fingerprint: BackendFingerprint?,
                    restoreIneffective: Set<String>) {
            self.spec = spec
            self.previous = previous
            self.fingerprint = fingerprint
            self.restoreIneffective = restoreIneffective
        }
    }

    public let parts: PipelineParts
    /// The wall clock for the record's timestamps.
    public var now: @Sendable () -> Date = { Date() }

    public init(parts: PipelineParts) { self.parts = parts }

    public func run(_ input: Input, emit: @escaping @Sendable (StageEvent) -> Void = { _ in }) async -> PassOutcome {
        var run = Run(input: input, now: now, emit: emit)
        return await run.go(parts)
    }
}

/// The working state of one ``TemplatePass/run(_:)``.
private struct Run {
    let input: Input
    let now: @Sendable () -> Date
    let emit: @Sendable (StageEvent) -> Void
    var events: [StageEvent] = []
    var dependencies: Set<String>
    var fingerprintRead: BackendFingerprint?

    typealias Input = TemplatePass.Input

    init(input: Input, now: @escaping @Sendable () -> Date, emit: @escaping @Sendable (StageEvent) -> Void) {
        self.input = input
        self.now = now
        self.emit = emit
        dependencies = [input.spec.path]
    }

    mutating func go(_ p: PipelineParts) async -> PassOutcome {
        let spec = input.spec
        let name = spec.name
        let previous = input.previous

        // hash
        let snapshot: TemplateSnapshot
        switch p.loader.load(spec) {
        case .failure(let problem):
            // every file it names, so that fixing an include (not only the template) retries it
            dependencies = p.loader.dependencies(of: spec)
            record(.templateInvalid(problem, path: spec.path))
            return failed(.templateFailed(problem.description), problem.description)
        case .success(let s):
            snapshot = s
        }
        dependencies = snapshot.dependencyPaths

        var fp: BackendFingerprint
        if let known = input.fingerprint {
            fp = known
        } else {
            switch await readFingerprint(p) {
            case .success(let f): fp = f
            case .failure(let e): return backendFailed(.warm, e)
            }
        }
        var plan = decide(snapshot, fp, p)
        if case .restore = plan, input.fingerprint != nil {
            // the known fingerprint may predate a server swap the monitor has not seen yet:
            // a restore must never load a KV file into another model, so confirm it now
            switch await readFingerprint(p) {
            case .failure(let e): return backendFailed(.warm, e)
            case .success(let fresh):
                if fresh.digest != fp.digest {
                    fp = fresh
                    plan = decide(snapshot, fp, p)
                }
            }
        }
        record(.hashCompared(unchanged: previous?.digest == snapshot.digest,
                                    digest: snapshot.digest, plan: plan))

        // render
        let rendered = TemplateRenderer.render(snapshot)
        let prompt: String
        do {
            if let request = snapshot.request {
                prompt = try await p.builder.prefix(request)
            } else {
                prompt = try await p.builder.prefix(rendered, spec: spec)
            }
        } catch {
            switch error {
            case .backend(let e): return backendFailed(.render, e)
            case .sentinelLost:
                let why = snapshot.request == nil
                    ? "the server's chat template dropped the message; use \"endpoint\": \"completion\""
                    : "the server's rendering of the request does not hold <{message}> exactly once: its chat template drops or repeats the user's turn"
                record(.sentinelLost(why: why))
                return failed(.templateFailed(why), why)
            case .rejected:
                let why = error.description
                record(.renderRejected(why: why))
                return failed(.templateFailed(why), why)
            }
        }
        record(.rendered(promptChars: prompt.count, hasPlaceholder: snapshot.request != nil || rendered.hasPlaceholder))
        let prefixDigest = PromptDigest.of(prompt)
        if case .prefill(let why) = plan, why == WarmPlanner.contentChanged, let prev = previous,
           prev.prefixDigest == prefixDigest, prev.fingerprint == fp.digest, let file = prev.kvFile,
           !input.restoreIneffective.contains(fp.digest), p.persister.exists(file) != false {
            // what changed is not in the prompt (decided from the server's rendering, not the file)
            plan = .restore(kvFile: file)
            record(.samePrefix(kvFile: file))
        }

        // warm
        let report: WarmReport
        do {
            switch plan {
            case .prefill: report = try await p.warmer.prefill(prompt, template: name)
            case .restore(let file): report = try await p.warmer.restore(prompt, fileName: file, template: name)
            }
        } catch {
            return backendFailed(.warm, error)
        }
        var ineffective: String?
        if case .ineffective(let cached, let of) = report.fallback {
            ineffective = fp.digest
            record(.restoreIneffective(cached: cached, of: of))
        }
        record(.warmed(report, digest: snapshot.digest))
        if report.promptTokens < TemplatePass.fewTokens { record(.fewTokens(report.promptTokens)) }

        // persist
        var rec = previous ?? WarmRecord()
        rec.digest = snapshot.digest
        rec.fingerprint = fp.digest
        rec.promptTokens = report.promptTokens
        rec.mode = report.mode
        rec.processedTokens = report.processedTokens
        rec.cachedTokens = report.cachedTokens
        rec.warmMS = report.durationMS
        rec.warmedAt = now()
        rec.prefixDigest = prefixDigest
        rec.lastError = nil
        rec.lastErrorAt = nil
        if report.mode == .prefill {
            let fileName = SlotFileNaming.fileName(template: name, model: snapshot.spec.model, digest: snapshot.digest)
            let warmer = p.warmer
            do {
                let saved = try await p.persister.save(
                    slot: report.slot, fileName: fileName, expectedTokens: report.promptTokens,
                    redo: { () async throws(BackendError) -> Int in try await warmer.prefill(prompt, template: name).slot })
                if let old = previous?.kvFile, old != fileName { p.persister.remove(old) }
                rec.kvFile = saved.fileName
                rec.saveMS = saved.durationMS
                record(.persisted(saved))
            } catch {
                if case .backend(.cancelled) = error { return outcome(.backendFailed(.cancelled)) }
                rec.kvFile = nil
                rec.lastError = "KV save failed: \(error)"
                rec.lastErrorAt = now()
                record(.persistFailed(error))
            }
        }
        var done = outcome(.warmed(report.mode), record: rec, ineffective: ineffective)
        done.prompt = prompt
        return done
    }

    private mutating func record(_ event: StageEvent) {
        events.append(event)
        emit(event)
    }

    private mutating func readFingerprint(_ p: PipelineParts) async -> Result<BackendFingerprint, BackendError> {
        do {
            let fp = try await BackendFingerprint.read(from: p.client, kvTag: p.config.backend.kvTag)
            fingerprintRead = fp
            return .success(fp)
        } catch {
            return .failure(error)
        }
    }

    private func decide(_ snapshot: TemplateSnapshot, _ fp: BackendFingerprint, _ p: PipelineParts) -> WarmPlan {
        WarmPlanner.plan(
            digest: snapshot.digest, fingerprint: fp.digest, record: input.previous,
            restoreIneffective: input.restoreIneffective.contains(fp.digest),
            kvFileExists: { p.persister.exists($0) })
    }

    private func outcome(_ result: PassResult, record: WarmRecord? = nil, ineffective: String? = nil) -> PassOutcome {
        PassOutcome(result: result, record: record, dependencies: dependencies, fingerprintRead: fingerprintRead,
                    restoreIneffective: ineffective, events: events)
    }

    /// The previous record with `why` as its last error.
    private func failed(_ result: PassResult, _ why: String) -> PassOutcome {
        var r = input.previous ?? WarmRecord()
        r.lastError = why
        r.lastErrorAt = now()
        return outcome(result, record: r)
    }

    private mutating func backendFailed(_ stage: Stage, _ error: BackendError) -> PassOutcome {
        if error == .cancelled { return outcome(.backendFailed(.cancelled)) }
        record(.backendFailed(stage, error))
        return failed(.backendFailed(error), error.description)
    }
}
