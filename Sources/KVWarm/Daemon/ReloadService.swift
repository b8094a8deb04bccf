import Logging
import Synchronization
import ServiceLifecycle
import UnixSignals

/// Re-reads the configuration on SIGHUP.
///
/// Sends RELOADING=1 with MONOTONIC_USEC, loads the file, adds and removes
/// templates and watches, warms what is new or changed, then READY=1. A bad
/// config keeps the old one in force and says why (log and STATUS); so does one
/// that adds or removes a pipeline (a backend, or a router model), which takes a
/// restart. A burst of signals (closer than 100 ms, up to 1 s) is one reload;
/// signals that arrive during a reload coalesce into one more.
public struct ReloadService: Service {
    /// The coordinator of each running pipeline.
    public let pipelines: [PipelineKey: WarmCoordinator]
    public let notifier: Notifier
    public let gate: ReadinessGate
    public let logger: Logger
    /// Signals closer together than this belong to one burst.
    public var quietPeriod: Duration = .milliseconds(100)
    /// A burst is cut after this long, so a steady stream of signals still reloads.
    public var burstLimit: Duration = .seconds(1)
    /// Loads the config and builds every pipeline's parts with the given slot schedulers (reads
    /// the API key files again).
    public let load: @Sendable ([PipelineKey: SlotScheduler]) throws(ConfigError) -> [PipelineKey: PipelineParts]
    /// Takes the `kvwarm reload` requests as each reload begins and records how it ended.
    public let recorder: ReloadRecorder?

    public init(pipelines: [PipelineKey: WarmCoordinator], notifier: Notifier, gate: ReadinessGate, logger: Logger,
                load: @escaping @Sendable ([PipelineKey: SlotScheduler]) throws(ConfigError) -> [PipelineKey: PipelineParts],
                recorder: ReloadRecorder? = nil) {
        self.pipelines = pipelines
        self.recorder = recorder
        self.notifier = notifier
        self.gate = gate
        self.logger = logger
        self.load = load
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let received = SignalCounter()
        let (requests, request) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let forward = Task {
            for await _ in signals {
                received.increment()
                request.yield()
            }
            request.finish()
        }
        defer { forward.cancel() }
        var handled = 0
        await withTaskCancellationHandler {
            for await _ in requests {
                // a wake-up left over from signals an earlier reload already covered
                guard received.value > handled else { continue }
                await gate.wait()
                if Task.isCancelled { return }
                notifier.reloading(status: "reloading configuration")
                // absorb a burst: wait for 100 ms without a new signal, at most 1 s
                let started = ContinuousClock.now
                var seen = received.value
                while ContinuousClock.now - started < burstLimit {
                    do { try await Task.sleep(for: quietPeriod) } catch { return }
                    let now = received.value
                    if now == seen { break }
                    seen = now
                }
                handled = seen
                // requests left before their signals, all of which this reload covers
                let requests = recorder?.takeRequests() ?? []
                let (ok, message) = await reload()
                recorder?.ended(requests: requests, ok: ok, message: message)
            }
        } onCancel: {
            request.finish()
        }
    }

    /// One reload, after RELOADING=1 was sent; whether it took, and the STATUS or why not.
    @discardableResult
    func reload() async -> (ok: Bool, message: String) {
        var schedulers: [PipelineKey: SlotScheduler] = [:]
        for (k, c) in pipelines { schedulers[k] = await c.parts.warmer.scheduler }
        var all: [PipelineKey: PipelineParts]
        do {
            all = try load(schedulers)
        } catch {
            return await reject("\(error)", reason: "bad_config")
        }
        guard Set(all.keys) == Set(pipelines.keys) else {
            let now = Set(pipelines.keys), then = Set(all.keys)
            let added = then.subtracting(now).sorted().map(\.description)
            let removed = now.subtracting(then).sorted().map(\.description)
            var what: [String] = []
            if !added.isEmpty { what.append("adds \(added.joined(separator: ", "))") }
            if !removed.isEmpty { what.append("removes \(removed.joined(separator: ", "))") }
            return await reject("the new configuration \(what.joined(separator: " and ")): restart kvwarm to change its backends or router models",
                                reason: "pipelines_changed")
        }
        var total = 0, failed = 0, changedCount = 0
        var changes: [(WarmCoordinator, Set<String>)] = []
        for (k, c) in pipelines.sorted(by: { $0.key < $1.key }) {
            let changed = await c.replace(parts: all[k]!)
            changes.append((c, changed))
        }
        for (c, changed) in changes { await c.enqueue(changed) }
        for (c, changed) in changes {
            await c.drained()
            total += await c.parts.config.templates.count
            failed += await c.problems.count
            changedCount += changed.count
        }
        logger.notice("reloaded: \(Counted.of(total, "template")), \(changedCount) new or changed",
                      metadata: .stage(.reload, .reloadDone, [
                          LogField.outcome: .string(Outcome.ok.rawValue),
                      ]))
        let status = "watching \(Counted.of(total, "template")) (\(failed) failed)"
        notifier.ready(status: status)
        return (true, status)
    }

    private func reject(_ why: String, reason: String) async -> (ok: Bool, message: String) {
        logger.error("reload rejected, keeping the running configuration: \(why)",
                     metadata: .stage(.reload, .reloadRejected, [
                         LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string(reason),
                     ]))
        var total = 0
        for c in pipelines.values { total += await c.parts.config.templates.count }
        notifier.ready(status: "watching \(Counted.of(total, "template")); last reload rejected: \(why)")
        return (false, why)
    }
}

/// Counts SIGHUPs as they arrive (written by the signal task, read by the reload loop).
final class SignalCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
