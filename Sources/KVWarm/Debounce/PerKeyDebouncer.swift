import Synchronization

/// Debounces each key of an event stream on its own, on any `Clock`.
///
/// `swift-async-algorithms`' `debounce` is global: on a stream mixing
/// templates it would drop all but the last template's event. This operator
/// keeps one timer per key (``DebounceStateMachine``) and emits a key after
/// `quiet` of silence for that key, or after `maxWait` of constant events.
/// Tests drive it with a virtual clock.
public struct PerKeyDebouncer<Key: Hashable & Sendable, C: Clock>: Sendable where C.Duration == Duration {
    public let quiet: Duration
    public let maxWait: Duration
    public let clock: C

    public init(quiet: Duration, maxWait: Duration, clock: C) {
        self.quiet = quiet
        self.maxWait = maxWait
        self.clock = clock
    }

    /// The debounced sequence of `input`. Keys still pending when `input` ends are emitted then.
    public func debounce<Input: AsyncSequence & Sendable>(_ input: Input) -> AsyncStream<Key>
    where Input.Element == Key {
        debounceEvents(input.map { DebounceEvent(key: $0) })
    }

    /// The debounced sequence of `input`, whose events may leave a pending quiet period alone
    /// (``DebounceEvent/restartsQuiet``).
    public func debounceEvents<Input: AsyncSequence & Sendable>(_ input: Input) -> AsyncStream<Key>
    where Input.Element == DebounceEvent<Key> {
        let (stream, output) = AsyncStream<Key>.makeStream(bufferingPolicy: .unbounded)
        let driver = Task { await run(input, output: output) }
        output.onTermination = { _ in driver.cancel() }
        return stream
    }

    private func run<Input: AsyncSequence & Sendable>(_ input: Input, output: AsyncStream<Key>.Continuation) async
    where Input.Element == DebounceEvent<Key> {
        let machine = DebounceBox(DebounceStateMachine<Key, C.Instant>(quiet: quiet, maxWait: maxWait))
        // wakes the timer loop when the first key of an idle period arrives
        let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await event in input {
                        let now = clock.now
                        machine.withLock { $0.received(event.key, at: now, restartsQuiet: event.restartsQuiet) }
                        wake.yield()
                    }
                } catch {}
                for k in machine.withLock({ $0.flush() }) { output.yield(k) }
                wake.finish()
            }
            group.addTask {
                var iterator = wakeups.makeAsyncIterator()
                while !Task.isCancelled {
                    // a new event never moves the earliest deadline earlier, so sleeping
                    // until the current earliest deadline never oversleeps
                    guard let deadline = machine.withLock({ $0.nextDeadline }) else {
                        if await iterator.next() == nil { break }
                        continue
                    }
                    // already due (debounce 0, or a deadline that passed while firing others): no timer
                    if clock.now < deadline {
                        do { try await clock.sleep(until: deadline, tolerance: nil) } catch { break }
                    } else if Task.isCancelled {
                        break
                    }
                    let now = clock.now
                    for k in machine.withLock({ $0.fire(now: now) }) { output.yield(k) }
                }
            }
            await group.next()
            group.cancelAll()
        }
        output.finish()
    }
}

/// One input of ``PerKeyDebouncer``.
public struct DebounceEvent<Key: Hashable & Sendable>: Sendable {
    public var key: Key
    /// False for an event that starts a quiet period when none is pending but never extends one.
    public var restartsQuiet: Bool

    public init(key: Key, restartsQuiet: Bool = true) {
        self.key = key
        self.restartsQuiet = restartsQuiet
    }
}

/// Shares one state machine between the input and timer tasks.
private final class DebounceBox<Key: Hashable & Sendable, Instant: InstantProtocol>: Sendable
where Instant.Duration == Duration {
    private let machine: Mutex<DebounceStateMachine<Key, Instant>>

    init(_ m: DebounceStateMachine<Key, Instant>) { machine = Mutex(m) }

    func withLock<R: Sendable>(_ body: (inout DebounceStateMachine<Key, Instant>) -> R) -> R {
        machine.withLock { body(&$0) }
    }
}
