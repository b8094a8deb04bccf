import Synchronization

/// Opens once, when the startup warm has finished; services that must not
/// start before that (the backend monitor) wait on it.
public final class ReadinessGate: Sendable {
    private enum State {
        case closed([CheckedContinuation<Void, Never>])
        case open
    }

    private let state = Mutex<State>(.closed([]))

    public init() {}

    public var isOpen: Bool { state.withLock { if case .open = $0 { true } else { false } } }

    public func open() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { s in
            guard case .closed(let w) = s else { return [] }
            s = .open
            return w
        }
        for w in waiters { w.resume() }
    }

    /// Returns when the gate is open (or at once if it already is).
    public func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = state.withLock { s in
                switch s {
                case .open: return true
                case .closed(var w):
                    w.append(c)
                    s = .closed(w)
                    return false
                }
            }
            if resumeNow { c.resume() }
        }
    }
}
