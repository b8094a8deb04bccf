import Dispatch
import Logging
import Synchronization

/// The one owner of the state that goes into `state.json`, and of writing it.
///
/// Changes are made with ``update(_:)``; the file is written on a serial dispatch
/// queue of its own, never on a thread of Swift's cooperative pool, since each write
/// fsyncs twice. Writes coalesce: a write takes the state as it is when the write
/// runs, so any number of changes before it cost one write.
///
/// - ``writeSoon()`` writes if anything changed (the queue drained).
/// - A change not yet written is written at most ``interval`` after it was made,
///   so a long pass in flight does not hold back the records of the passes before it.
/// - ``flush(onlyIfChanged:)`` writes now and returns once the file is on disk.
///
/// A crash loses at most the changes of the last interval: their KV files are then
/// orphans, swept at the next start, and those templates prefill again.
public final class StateWriter: Sendable {
    /// The longest a change waits to be written.
    public static let interval: Duration = .seconds(1)

    private struct Inner {
        var state: WarmState
        var dirty = false
        var timerArmed = false
    }

    public let store: StateStore
    private let logger: Logger
    private let inner: Mutex<Inner>
    private let queue = DispatchQueue(label: "kvwarm-state")

    public init(store: StateStore, state: WarmState, logger: Logger) {
        self.store = store
        self.logger = logger
        inner = Mutex(Inner(state: state))
    }

    /// The state as it is now (written or not).
    public var state: WarmState { inner.withLock { $0.state } }

    /// Changes the state; a write follows within ``interval``.
    public func update(_ body: (inout WarmState) -> Void) {
        let arm = inner.withLock { s -> Bool in
            body(&s.state)
            s.dirty = true
            defer { s.timerArmed = true }
            return !s.timerArmed
        }
        guard arm else { return }
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(Self.interval.milliseconds))) { [self] in
            inner.withLock { $0.timerArmed = false }
            write(force: false)
        }
    }

    /// Writes the state, without waiting, if it changed since the last write.
    public func writeSoon() {
        queue.async { [self] in write(force: false) }
    }

    /// Writes the state now (with `onlyIfChanged`, only if it changed since the last write)
    /// and returns when it is on disk.
    public func flush(onlyIfChanged: Bool = false) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            queue.async { [self] in
                write(force: !onlyIfChanged)
                c.resume()
            }
        }
    }

    /// Runs on `queue` only.
    private func write(force: Bool) {
        let snapshot = inner.withLock { s -> WarmState? in
            guard s.dirty || force else { return nil }
            s.dirty = false
            return s.state
        }
        guard let snapshot else { return }
        do {
            try store.save(snapshot)
        } catch {
            logger.error("cannot write the state file: \(error)", metadata: .stage(.persist, .persistFailed, [
                LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("state_write"),
                LogField.path: .string(store.path),
            ]))
        }
    }
}
