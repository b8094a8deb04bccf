import Synchronization
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// An input sequence that tells the test when the consumer has taken an element:
/// the consumer asking for element n+1 proves it finished handling element n.
final class ObservedInput: AsyncSequence, Sendable {
    typealias Element = String

    private let stream: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private struct State {
        var demands = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())

    init() {
        (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
    }

    func send(_ key: String) { continuation.yield(key) }
    func finish() { continuation.finish() }

    fileprivate func demanded() {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.demands += 1
            let n = s.demands
            let r = s.waiters.filter { n >= $0.0 }.map(\.1)
            s.waiters.removeAll { n >= $0.0 }
            return r
        }
        for c in ready { c.resume() }
    }

    /// Waits until the consumer has called `next()` `n` times.
    func waitForDemand(_ n: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s in
                if s.demands >= n { return true }
                s.waiters.append((n, c))
                return false
            }
            if ready { c.resume() }
        }
    }

    /// Sends `key` and waits until the debouncer has recorded it (asked for the next one).
    func sendAndWait(_ key: String) async {
        let before = state.withLock { $0.demands }
        send(key)
        await waitForDemand(before + 1)
    }

    struct Iterator: AsyncIteratorProtocol {
        var inner: AsyncStream<String>.Iterator
        let owner: ObservedInput
        mutating func next() async -> String? {
            owner.demanded()
            return await inner.next()
        }
    }

    func makeAsyncIterator() -> Iterator { Iterator(inner: stream.makeAsyncIterator(), owner: self) }
}

@Suite(.timeLimit(.minutes(1))) struct PerKeyDebouncerTests {
    let clock = ManualClock()
    let input = ObservedInput()

    func start(quiet: Int64 = 100, maxWait: Int64 = 1000) async -> AsyncStream<String>.Iterator {
        let debouncer = PerKeyDebouncer<String, ManualClock>(
            quiet: .milliseconds(quiet), maxWait: .milliseconds(maxWait), clock: clock)
        let out = debouncer.debounce(input).makeAsyncIterator()
        await input.waitForDemand(1)  // the driver is reading its input
        return out
    }

    func at(_ ms: Int64) -> ManualClock.Instant { .init(offset: .milliseconds(ms)) }

    @Test func singleEventFiresAfterQuiet() async throws {
        var out = await start()
        await input.sendAndWait("a")
        #expect(await clock.waitForSleepers(1))
        #expect(clock.sleeperDeadlines == [at(100)])
        clock.advance(by: .milliseconds(99))
        #expect(clock.sleeperCount == 1, "not due before quiet has passed")
        clock.advance(by: .milliseconds(1))
        #expect(await out.next() == "a")
        #expect(clock.elapsed == .milliseconds(100))
        input.finish()
        #expect(await out.next() == nil, "nothing else was pending")
    }

    /// With no quiet period a key is due when it arrives: it is emitted without any timer.
    @Test func zeroQuietEmitsWithoutSleeping() async throws {
        var out = await start(quiet: 0, maxWait: 0)
        await input.sendAndWait("a")
        #expect(await out.next() == "a")
        await input.sendAndWait("b")
        #expect(await out.next() == "b")
        #expect(clock.sleepCalls == 0, "no timer was armed, not even one that returns at once")
        #expect(clock.elapsed == .zero)
        input.finish()
        #expect(await out.next() == nil)
    }

    @Test func repeatedEventsWithinQuietKeepPostponing() async throws {
        var out = await start()
        await input.sendAndWait("a")                  // t=0
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .milliseconds(60))
        await input.sendAndWait("a")                  // t=60 → due 160
        clock.advance(by: .milliseconds(40))          // t=100: the old deadline passes
        #expect(await clock.waitForSleepers(1), "the timer sleeps again instead of firing")
        #expect(clock.sleeperDeadlines == [at(160)])
        clock.advance(by: .milliseconds(50))          // t=150
        await input.sendAndWait("a")                  // → due 250
        clock.advance(by: .milliseconds(10))          // t=160
        #expect(await clock.waitForSleepers(1))
        #expect(clock.sleeperDeadlines == [at(250)])
        clock.advance(by: .milliseconds(90))          // t=250
        #expect(await out.next() == "a")
        #expect(clock.elapsed == .milliseconds(250))
        input.finish()
        #expect(await out.next() == nil, "the key fired exactly once")
    }

    @Test func constantEventsFireAtMaxWait() async throws {
        var out = await start(quiet: 100, maxWait: 300)
        // an event every 50 ms from t=0 to t=250: quiet never passes
        for step in 0..<6 {
            await input.sendAndWait("a")
            if step == 0 { #expect(await clock.waitForSleepers(1)) }
            if step < 5 {
                clock.advance(by: .milliseconds(50))
                #expect(await clock.waitForSleepers(1), "still pending at step \(step)")
            }
        }
        #expect(clock.sleeperDeadlines == [at(300)], "capped at first event + maxWait")
        clock.advance(by: .milliseconds(50))           // t=300
        // bounded: if nothing fires at t=300, the watchdog moves virtual time past every
        // deadline after 10 s of real time, the key fires late and the elapsed check fails
        let watchdog = Task { [clock] in
            if (try? await Task.sleep(for: .seconds(10))) != nil { clock.advance(by: .seconds(1)) }
        }
        #expect(await out.next() == "a")
        watchdog.cancel()
        #expect(clock.elapsed == .milliseconds(300), "fired at maxWait, not when the quiet period ended")
        input.finish()
        #expect(await out.next() == nil, "exactly one firing")
    }

    @Test func keysAreDebouncedIndependently() async throws {
        var out = await start(quiet: 100, maxWait: 1000)
        await input.sendAndWait("a")                   // t=0: a due 100
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .milliseconds(50))
        await input.sendAndWait("b")                   // t=50: b due 150
        clock.advance(by: .milliseconds(40))
        await input.sendAndWait("b")                   // t=90: b due 190
        clock.advance(by: .milliseconds(10))           // t=100: a is due, b's events did not delay it
        #expect(await out.next() == "a")
        #expect(clock.elapsed == .milliseconds(100))
        #expect(await clock.waitForSleepers(1))
        #expect(clock.sleeperDeadlines == [at(190)])
        clock.advance(by: .milliseconds(90))           // t=190
        #expect(await out.next() == "b")
        input.finish()
        #expect(await out.next() == nil)
    }

    @Test func endingInputFlushesPendingKeys() async throws {
        var out = await start(quiet: 100, maxWait: 1000)
        await input.sendAndWait("x")
        await input.sendAndWait("y")
        await input.sendAndWait("x")
        #expect(await clock.waitForSleepers(1))
        input.finish()
        // no time passes: the pending keys come out when the input ends, in arrival order
        #expect(await out.next() == "x")
        #expect(await out.next() == "y")
        #expect(await out.next() == nil)
        #expect(clock.elapsed == .zero)
    }
}
