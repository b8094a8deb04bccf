import Synchronization

/// Cuts the backend monitor's sleep short: ``poke()`` ends the current (or the next) sleep.
/// (A timer that fired just as a poke ended the sleep can end the next one early: one extra check.)
public final class CheckWake: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Ends the sleep in progress, or the next one at once.
    public func poke() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else { s.pending = true; return nil }
            s.waiter = nil
            return w
        }
        w?.resume()
    }

    /// Sleeps for `duration` or until poked; false when the task was cancelled.
    public func sleep(for duration: Duration) async -> Bool {
        let timer = Task { [self] in
            // a cancelled timer (the sleep ended otherwise) pokes nothing
            do { try await Task.sleep(for: duration); poke() } catch {}
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.pending || Task.isCancelled { s.pending = false; return true }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            poke()
        }
        return !Task.isCancelled
    }
}
