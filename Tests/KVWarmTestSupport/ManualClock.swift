import Synchronization

/// A virtual `Clock` for tests: time moves only when ``advance(by:)`` is called.
///
/// `sleep(until:)` registers a continuation that ``advance(by:)`` resumes once
/// its deadline has passed. ``waitForSleepers(_:)`` lets a test wait until code
/// under test has actually gone to sleep, so no test ever sleeps for real.
public final class ManualClock: Clock, Sendable {
    public struct Instant: InstantProtocol, CustomStringConvertible {
        /// Time since the clock's origin.
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
        public var description: String { "t+\(offset)" }
    }

    private struct Sleeper {
        var id: UInt64
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Waiter {
        var id: UInt64
        var count: Int
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID: UInt64 = 0
        var sleepCalls = 0
        var sleepers: [Sleeper] = []
        var cancelled: Set<UInt64> = []
        var waiters: [Waiter] = []

        /// Removes and returns the waiters satisfied by the current sleeper count.
        mutating func satisfiedWaiters() -> [CheckedContinuation<Bool, Never>] {
            let n = sleepers.count
            let ready = waiters.filter { n >= $0.count }.map(\.continuation)
            waiters.removeAll { n >= $0.count }
            return ready
        }
    }

    private let state = Mutex(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Time elapsed since the origin.
    public var elapsed: Duration { now.offset }

    /// How many times `sleep(until:)` was called, including calls that returned at once.
    public var sleepCalls: Int { state.withLock { $0.sleepCalls } }

    /// How many tasks are currently suspended in `sleep(until:)`.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The deadlines of the current sleepers, earliest first.
    public var sleeperDeadlines: [Instant] { state.withLock { $0.sleepers.map(\.deadline).sorted() } }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        let id: UInt64 = state.withLock { s in
            s.sleepCalls += 1
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                enum Action { case resume, cancel, wait([CheckedContinuation<Bool, Never>]) }
                let action: Action = state.withLock { s in
                    if s.cancelled.remove(id) != nil { return .cancel }
                    if deadline <= s.now { return .resume }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: c))
                    return .wait(s.satisfiedWaiters())
                }
                switch action {
                case .resume: c.resume()
                case .cancel: c.resume(throwing: CancellationError())
                case .wait(let waiters): for w in waiters { w.resume(returning: true) }
                }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, any Error>? = state.withLock { s in
                if let i = s.sleepers.firstIndex(where: { $0.id == id }) {
                    return s.sleepers.remove(at: i).continuation
                }
                s.cancelled.insert(id)  // not registered yet: the registration will see this
                return nil
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward by `duration` and resumes every sleeper whose deadline has passed.
    public func advance(by duration: Duration) {
        let due: [CheckedContinuation<Void, any Error>] = state.withLock { s in
            s.now = s.now.advanced(by: duration)
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            s.sleepers.removeAll { $0.deadline <= now }
            return due.map(\.continuation)
        }
        for c in due { c.resume() }
    }

    /// Suspends until at least `count` tasks are sleeping on this clock.
    ///
    /// Returns false if that has not happened within `failsafe` of real time, so a
    /// broken implementation fails the test instead of hanging it.
    @discardableResult
    public func waitForSleepers(_ count: Int = 1, failsafe: Duration = .seconds(30)) async -> Bool {
        let waiterID: UInt64 = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    let ready: Bool = self.state.withLock { s in
                        if s.sleepers.count >= count { return true }
                        s.waiters.append(Waiter(id: waiterID, count: count, continuation: c))
                        return false
                    }
                    if ready { c.resume(returning: true) }
                }
            }
            group.addTask {
                try? await ContinuousClock().sleep(for: failsafe)
                return nil
            }
            var result = false
            if let first = await group.next(), let r = first {
                result = r
            } else {
                // failsafe expired: release this call's waiter (if still registered)
                let stale: CheckedContinuation<Bool, Never>? = self.state.withLock { s in
                    guard let i = s.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
                    return s.waiters.remove(at: i).continuation
                }
                stale?.resume(returning: false)
                if let second = await group.next(), let r = second { result = r }
            }
            group.cancelAll()
            return result
        }
    }
}
