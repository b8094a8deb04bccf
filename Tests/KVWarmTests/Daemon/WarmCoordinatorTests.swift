import Foundation
import Logging
import Synchronization
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// Stands in for `Task.sleep` in the coordinator's retry timers: a sleep ends only when the
/// test releases it (or its task is cancelled), and the test can await sleeps and cancellations.
final class VirtualSleeper: Sendable {
    private struct Waiter {
        var sleeps: Int
        var cancellations: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var nextID: UInt64 = 0
        var pending: [(id: UInt64, duration: Duration, continuation: CheckedContinuation<Void, any Error>)] = []
        var early: Set<UInt64> = []  // cancelled before they were registered
        var requested: [Duration] = []
        var cancellations = 0
        var waiters: [Waiter] = []

        mutating func ready() -> [CheckedContinuation<Void, Never>] {
            let (s, c) = (requested.count, cancellations)
            let r = waiters.filter { s >= $0.sleeps && c >= $0.cancellations }.map(\.continuation)
            waiters.removeAll { s >= $0.sleeps && c >= $0.cancellations }
            return r
        }
    }

    private let state = Mutex(State())

    /// Every duration asked for so far.
    var requested: [Duration] { state.withLock { $0.requested } }
    /// Sleeps waiting for a release now.
    var pendingCount: Int { state.withLock { $0.pending.count } }
    var cancellations: Int { state.withLock { $0.cancellations } }

    @Sendable func sleep(_ d: Duration) async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let (cancelled, ready) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                    s.requested.append(d)
                    if s.early.remove(id) != nil {
                        s.cancellations += 1
                        return (true, s.ready())
                    }
                    s.pending.append((id, d, c))
                    return (false, s.ready())
                }
                for w in ready { w.resume() }
                if cancelled { c.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let (c, ready) = state.withLock { s -> (CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
                guard let i = s.pending.firstIndex(where: { $0.id == id }) else {
                    s.early.insert(id)
                    return (nil, [])
                }
                s.cancellations += 1
                return (s.pending.remove(at: i).continuation, s.ready())
            }
            for w in ready { w.resume() }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Ends every pending sleep normally (the retry delays "pass").
    func releaseAll() {
        let cs = state.withLock { s in
            defer { s.pending = [] }
            return s.pending.map(\.continuation)
        }
        for c in cs { c.resume() }
    }

    /// Returns once `sleeps` sleeps have been asked for and `cancellations` of them cancelled.
    func wait(sleeps: Int = 0, cancellations: Int = 0) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s in
                if s.requested.count >= sleeps && s.cancellations >= cancellations { return true }
                s.waiters.append(Waiter(sleeps: sleeps, cancellations: cancellations, continuation: c))
                return false
            }
            if now { c.resume() }
        }
    }
}

/// ``WarmCoordinator`` in-process: ``ScriptedTransport`` as the server, a ``VirtualSleeper`` for
/// the retry timers, and the progress observer (an `AsyncStream`) to await the end of each pass.
@Suite(.timeLimit(.minutes(1))) struct WarmCoordinatorTests {
    struct Env {
        let box: PassSandbox
        let t: ScriptedTransport
        let sleeper = VirtualSleeper()
        let scheduler = SlotScheduler()
        let writer: StateWriter
        let identity: BackendIdentity
        let coordinator: WarmCoordinator
        let progress: AsyncStream<(String, PassResult)>
        /// The coordinator's records at info level and above, as text lines.
        let logs = RecordingOutput()

        init(_ templates: [String]) async throws {
            box = try PassSandbox()
            for n in templates { try box.writeTemplate(n) }
            t = ScriptedTransport(.init(slotSaveDirectory: box.slots))
            let config = try box.config(templates)
            let store = StateStore(directory: box.stateDir)
            try store.prepare()
            writer = StateWriter(store: store, state: WarmState(), logger: quietLogger)
            identity = BackendIdentity(scheduler: scheduler, writer: writer, logger: quietLogger)
            coordinator = WarmCoordinator(parts: PipelineParts(config: config, transport: t, scheduler: scheduler),
                                          identity: identity, writer: writer,
                                          logger: Logger(label: "c") { [logs] in TextLogHandler(label: $0, output: logs, clock: { "T" }) },
                                          sleep: sleeper.sleep)
            let (stream, sink) = AsyncStream<(String, PassResult)>.makeStream()
            progress = stream
            await coordinator.setProgressObserver { sink.yield(($0, $1)) }
        }

        func parts(_ templates: [String], file: String) throws -> PipelineParts {
            PipelineParts(config: try box.config(templates, file: file), transport: t, scheduler: scheduler)
        }

        func startWorker() -> Task<Void, Never> {
            let c = coordinator
            return Task { await c.runWorker() }
        }

        var stateFile: WarmState? {
            if case .loaded(let s) = writer.store.load() { return s }
            return nil
        }

        func kvFileExists(_ name: String) -> Bool {
            FileManager.default.fileExists(atPath: box.slots + "/" + name)
        }
    }

    /// `s` without its timestamps, which state.json keeps to the second only (ISO 8601).
    func withoutDates(_ s: WarmState) -> WarmState {
        var s = s
        for (k, var r) in s.templates {
            r.warmedAt = nil
            r.lastErrorAt = nil
            s.templates[k] = r
        }
        return s
    }

    /// The next `n` pass ends reported by the observer.
    func next(_ n: Int, _ it: inout AsyncStream<(String, PassResult)>.Iterator) async -> [(String, PassResult)] {
        var out: [(String, PassResult)] = []
        while out.count < n, let e = await it.next() { out.append(e) }
        return out
    }

    @Test func startupWarmsEveryTemplateAndWritesTheState() async throws {
        let names = ["alpha", "beta", "gamma"]
        let env = try await Env(names)
        defer { env.box.remove() }
        let worker = env.startWorker()
        await env.coordinator.enqueueAll()
        await env.coordinator.drained()

        let state = env.writer.state
        #expect(Set(state.templates.keys) == Set(names))
        for n in names {
            let r = try #require(state.templates[n])
            #expect(r.mode == .prefill)
            #expect(r.lastError == nil)
            #expect(r.kvFile.map(env.kvFileExists) == true, "\(n)'s KV file is on disk")
        }
        #expect(await env.coordinator.problems.isEmpty)
        let p = await env.coordinator.progress()
        #expect(p.done == 3 && p.current == nil)
        #expect(env.t.requests(.post("/completion")).count == 3)
        let fp = await env.identity.fingerprint
        #expect(fp != nil)
        #expect(state.backend == fp)
        #expect(env.t.requests(.get("/props")).count == 1, "the fingerprint is read once, then known")

        await env.coordinator.flush()
        // state.json stores dates as ISO 8601 without fractional seconds
        let onDisk = try #require(env.stateFile)
        #expect(withoutDates(onDisk) == withoutDates(state), "state.json holds what the writer holds")
        for (n, r) in state.templates {
            let written = try #require(onDisk.templates[n]?.warmedAt)
            #expect(abs(written.timeIntervalSince(try #require(r.warmedAt))) < 1)
        }
        worker.cancel()
        await worker.value
    }

    @Test func aPassQueuedDuringAKeepWarmRoundStartsOnlyAfterIt() async throws {
        let env = try await Env(["alpha"])
        defer { env.box.remove() }
        let worker = env.startWorker()
        var it = env.progress.makeAsyncIterator()
        #expect(await env.coordinator.beginKeepWarm(), "idle: the round may use the slots")
        #expect(await !env.coordinator.beginKeepWarm(), "one round at a time")
        await env.coordinator.enqueue(["alpha"])
        #expect(await env.coordinator.inFlightAge() == nil, "the pass did not start during the round")
        #expect(env.t.requests(.post("/completion")).isEmpty, "no pass touches the slots during the round")
        await env.coordinator.endKeepWarm()
        #expect(await next(1, &it).map(\.0) == ["alpha"], "the pass ran after the round")
        #expect(env.t.requests(.post("/completion")).count == 1)
        await env.coordinator.enqueue(["alpha"])
        #expect(await !env.coordinator.beginKeepWarm(), "no round while a pass is queued or running")
        _ = await next(1, &it)
        worker.cancel()
        await worker.value
    }

    @Test func aBackendFailureRetriesOnlyWhenTheSleepEnds() async throws {
        let env = try await Env(["alpha"])
        defer { env.box.remove() }
        var events = env.progress.makeAsyncIterator()
        env.t.inject(.internalError, at: .post("/completion"), times: 1)
        let worker = env.startWorker()
        await env.coordinator.enqueueAll()

        let failed = await next(1, &events)
        let error = BackendError.http(status: 500, message: "Internal Server Error")
        #expect(failed.map(\.0) == ["alpha"])
        #expect(failed.first?.1 == .backendFailed(error))
        await env.sleeper.wait(sleeps: 1)
        #expect(await env.coordinator.problems == ["alpha": error.description])
        #expect(env.writer.state.templates["alpha"]?.lastError == error.description)
        let delay = try #require(env.sleeper.requested.first)
        #expect(delay > .zero && delay <= .seconds(1), "the first retry waits at most the backoff base")
        await env.coordinator.drained()  // a pending retry is not queued work
        #expect(env.t.requests(.post("/completion")).count == 1, "no retry before the sleep ends")
        #expect(await env.coordinator.progress().done == 1)
        #expect(await env.identity.fingerprint == nil, "a transient failure drops the known fingerprint")

        env.sleeper.releaseAll()
        let retried = await next(1, &events)
        #expect(retried.first?.0 == "alpha")
        #expect(retried.first?.1 == .warmed(.prefill))
        #expect(await env.coordinator.problems.isEmpty)
        let r = try #require(env.writer.state.templates["alpha"])
        #expect(r.lastError == nil && r.kvFile != nil)
        #expect(env.t.requests(.post("/completion")).count == 2)
        #expect(env.sleeper.requested.count == 1, "a success schedules no further retry")
        worker.cancel()
        await worker.value
    }

    @Test func anEditDuringThePassGivesExactlyOneFollowUp() async throws {
        let env = try await Env(["alpha"])
        defer { env.box.remove() }
        var events = env.progress.makeAsyncIterator()
        let gate = ScriptedTransport.Gate()
        env.t.inject(.hold(gate), at: .post("/completion"), times: 1)
        let worker = env.startWorker()
        await env.coordinator.enqueueAll()
        await gate.waitForArrivals(1)

        let spec = try #require(await env.coordinator.parts.config.template(named: "alpha"))
        let loader = await env.coordinator.parts.loader
        let before = try loader.load(spec).get().digest
        try env.box.writeTemplate("alpha", extra: "edited")
        let after = try loader.load(spec).get().digest
        #expect(before != after)
        for _ in 0..<3 { await env.coordinator.enqueue(["alpha"]) }  // several events for one edit burst
        #expect(await env.coordinator.progress().current == "alpha")
        gate.open()

        let ends = await next(2, &events)
        #expect(ends.map(\.0) == ["alpha", "alpha"])
        #expect(ends.map(\.1) == [.warmed(.prefill), .warmed(.prefill)])
        await env.coordinator.drained()
        #expect(await env.coordinator.progress().done == 2, "one pass, one follow-up, no more")
        #expect(env.t.requests(.post("/completion")).count == 2)
        let r = try #require(env.writer.state.templates["alpha"])
        #expect(r.digest == after, "the latest content wins")
        #expect(r.kvFile == SlotFileNaming.fileName(template: "alpha", digest: after))
        #expect(env.kvFileExists(SlotFileNaming.fileName(template: "alpha", digest: after)))
        #expect(!env.kvFileExists(SlotFileNaming.fileName(template: "alpha", digest: before)),
                "the superseded KV file is removed")
        worker.cancel()
        await worker.value
    }

    @Test func replaceRemovingATemplateCancelsItsRetryAndDropsItsRecord() async throws {
        let env = try await Env(["alpha", "beta"])
        defer { env.box.remove() }
        var events = env.progress.makeAsyncIterator()
        let worker = env.startWorker()
        await env.coordinator.enqueueAll()
        _ = await next(2, &events)
        #expect(env.writer.state.templates.count == 2)

        env.t.inject(.internalError, at: .post("/slots/*"), times: 1)  // beta's restore fails
        await env.coordinator.enqueue(["beta"])
        let failed = await next(1, &events)
        #expect(failed.first?.0 == "beta")
        #expect(failed.first.map { if case .backendFailed = $0.1 { true } else { false } } == true)
        await env.sleeper.wait(sleeps: 1)
        #expect(await env.coordinator.problems["beta"] != nil)

        let changed = await env.coordinator.replace(parts: try env.parts(["alpha"], file: "config-2.json"))
        #expect(changed.isEmpty, "alpha is unchanged")
        await env.sleeper.wait(cancellations: 1)
        #expect(env.sleeper.pendingCount == 0)
        #expect(env.writer.state.templates["beta"] == nil)
        #expect(env.writer.state.templates["alpha"] != nil)
        #expect(await env.coordinator.problems["beta"] == nil)
        await env.coordinator.enqueue(["beta"])  // no longer configured: ignored
        await env.coordinator.drained()
        #expect(await env.coordinator.progress().done == 3)
        await env.coordinator.flush()
        #expect(env.stateFile?.templates["beta"] == nil)
        worker.cancel()
        await worker.value
    }

    @Test func replaceRemovingTheTemplateInFlightCancelsItsPass() async throws {
        let env = try await Env(["alpha", "beta"])
        defer { env.box.remove() }
        var events = env.progress.makeAsyncIterator()
        let worker = env.startWorker()
        await env.coordinator.enqueueAll()
        _ = await next(2, &events)
        #expect(env.writer.state.templates["beta"] != nil)

        let gate = ScriptedTransport.Gate()
        env.t.inject(.hold(gate), at: .post("/completion"), times: 1)
        await env.coordinator.enqueue(["beta"])
        await gate.waitForArrivals(1)
        #expect(await env.coordinator.progress().current == "beta")

        _ = await env.coordinator.replace(parts: try env.parts(["alpha"], file: "config-2.json"))
        let ended = await next(1, &events)
        #expect(ended.first?.0 == "beta")
        #expect(ended.first?.1 == .backendFailed(.cancelled))
        #expect(gate.heldCount == 0)
        await env.coordinator.drained()
        #expect(env.writer.state.templates["beta"] == nil, "the removed template's record is dropped")
        #expect(env.sleeper.requested.isEmpty, "a cancelled pass is not retried")
        #expect(await env.coordinator.problems.isEmpty)
        worker.cancel()
        await worker.value
    }

    @Test func dependencyChangesCarryTheIncludesAfterAPass() async throws {
        let env = try await Env(["alpha"])
        defer { env.box.remove() }
        var deps = env.coordinator.dependencyChanges.makeAsyncIterator()
        let initial = await deps.next()
        #expect(initial == ["alpha": [env.box.path("alpha")]], "it starts with the configured paths")

        let worker = env.startWorker()
        await env.coordinator.enqueueAll()
        let after = await deps.next()
        #expect(after == ["alpha": [env.box.path("alpha"), env.box.includePath]])

        // a reload that changes nothing keeps the known includes; removing the template drops it
        try env.box.writeTemplate("beta")
        await env.coordinator.drained()
        _ = await env.coordinator.replace(parts: try env.parts(["alpha", "beta"], file: "config-2.json"))
        let reloaded = await deps.next()
        #expect(reloaded == ["alpha": [env.box.path("alpha"), env.box.includePath], "beta": [env.box.path("beta")]])
        worker.cancel()
        await worker.value
    }

    @Test func cancellingTheWorkerCancelsThePassInFlightAndWritesTheState() async throws {
        let env = try await Env(["alpha", "beta"])
        defer { env.box.remove() }
        var events = env.progress.makeAsyncIterator()
        let worker = env.startWorker()
        await env.coordinator.enqueue(["alpha"])
        _ = await next(1, &events)
        await env.coordinator.drained()
        await env.coordinator.flush()
        try FileManager.default.removeItem(atPath: env.writer.store.path)
        env.writer.update { $0.restoreIneffective = ["marker"] }  // a change not yet written

        let gate = ScriptedTransport.Gate()
        env.t.inject(.hold(gate), at: .post("/completion"), times: 1)
        await env.coordinator.enqueue(["beta"])
        await gate.waitForArrivals(1)
        await env.coordinator.enqueue(["alpha"])
        worker.cancel()
        await worker.value
        #expect(env.logs.lines.contains(
            "T NOTICE beta: stopping: the warm of beta was cut short; it warms at the next start; not started: alpha"),
            "\(env.logs.lines)")

        let ended = await next(1, &events)
        #expect(ended.first?.0 == "beta")
        #expect(ended.first?.1 == .backendFailed(.cancelled))
        #expect(gate.heldCount == 0)
        #expect(await env.coordinator.stopped)
        #expect(await env.coordinator.progress().current == nil)
        let state = try #require(env.stateFile, "runWorker writes the state before it returns")
        #expect(state.restoreIneffective == ["marker"])
        #expect(state.templates["alpha"] != nil)
        #expect(state.templates["beta"] == nil)
        #expect(env.sleeper.requested.isEmpty)

        await env.coordinator.enqueue(["alpha"])  // after shutdown nothing starts
        await env.coordinator.drained()
        #expect(await env.coordinator.progress().done == 2)
    }
}
