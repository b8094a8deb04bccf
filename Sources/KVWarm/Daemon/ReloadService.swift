import Logging
import Synchronization
import ServiceLifecycle
import UnixSignals

/// Re-reads the configuration on SIGHUP.
///
/// Sends RELOADING=1 with MONOTONIC_USEC, loads the file, adds and removes
/// templates and watches, warms what is new or changed, then READY=1. A bad
/// config keeps the old one in force and says why (log and STATUS). A burst
/// of signals (closer than 100 ms, up to 1 s) is one reload; signals that
/// arrive during a reload coalesce into one more.
public struct ReloadService: Service {
    public let coordinator: WarmCoordinator
    public let notifier: Notifier
    public let gate: ReadinessGate
    public let logger: Logger
    /// Signals closer together than this belong to one burst.
    public var quietPeriod: Duration = .milliseconds(100)
    /// A burst is cut after this long, so a steady stream of signals still reloads.
    public var burstLimit: Duration = .seconds(1)
    /// Loads the config and builds the parts (reads the API key file again).
    public let load: @Sendable () throws(ConfigError) -> PipelineParts

    public init(coordinator: WarmCoordinator, notifier: Notifier, gate: ReadinessGate, logger: Logger,
                load: @escaping @Sendable () throws(ConfigError) -> PipelineParts) {
        self.coordinator = coordinator
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
                await reload()
            }
        } onCancel: {
            request.finish()
        }
    }

    /// One reload, after RELOADING=1 was sent.
    func reload() async {
        let parts: PipelineParts
        do {
            parts = try load()
        } catch {
            logger.error("reload rejected, keeping the running configuration: \(error)",
                         metadata: .stage(.reload, .reloadRejected, [
                             LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("bad_config"),
                         ]))
            let total = await coordinator.parts.config.templates.count
            notifier.ready(status: "watching \(Counted.of(total, "template")); last reload rejected: \(error)")
            return
        }
        let changed = await coordinator.replace(parts: parts)
        await coordinator.enqueue(changed)
        await coordinator.drained()
        let total = parts.config.templates.count
        let failed = await coordinator.problems.count
        logger.notice("reloaded: \(Counted.of(total, "template")), \(changed.count) new or changed",
                      metadata: .stage(.reload, .reloadDone, [
                          LogField.outcome: .string(Outcome.ok.rawValue),
                      ]))
        notifier.ready(status: "watching \(Counted.of(total, "template")) (\(failed) failed)")
    }
}

/// Counts SIGHUPs as they arrive (written by the signal task, read by the reload loop).
final class SignalCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
