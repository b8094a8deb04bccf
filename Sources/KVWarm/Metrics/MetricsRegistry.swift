import Synchronization

/// The counters behind the metrics file, since the daemon started: warms by mode and outcome,
/// warm seconds and keep-warm put-backs per template. The coordinator and the keep-warm round
/// count; ``changes`` tells the ``MetricsService`` that there is something new to write.
public final class MetricsRegistry: Sendable {
    private struct State {
        var warms: [String: [MetricsSnapshot.WarmCount: Int]] = [:]
        var seconds: [String: Double] = [:]
        var kept: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let sink: AsyncStream<Void>.Continuation
    /// One element after any change (newest only).
    public let changes: AsyncStream<Void>

    public init() {
        (changes, sink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// A pass of `template` ended: `mode` nil when it failed before choosing one (counted as prefill).
    public func warmed(_ template: String, mode: String?, ok: Bool, seconds: Double) {
        state.withLock { s in
            s.warms[template, default: [:]][MetricsSnapshot.WarmCount(mode: mode ?? "prefill", outcome: ok ? "ok" : "failed"), default: 0] += 1
            s.seconds[template, default: 0] += seconds
        }
        sink.yield()
    }

    /// Keeping warm put `template` back.
    public func keptWarm(_ template: String) {
        state.withLock { $0.kept[template, default: 0] += 1 }
        sink.yield()
    }

    /// Something else the file shows changed (a template's state).
    public func touch() { sink.yield() }

    /// Copies the counters of `template` into `t`.
    public func fill(_ t: inout MetricsSnapshot.Template) {
        state.withLock { s in
            t.warms = s.warms[t.name] ?? [:]
            t.warmSeconds = s.seconds[t.name] ?? 0
            t.keptWarm = s.kept[t.name] ?? 0
        }
    }
}
