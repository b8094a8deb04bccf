import Testing
@testable import KVWarm

/// A plain instant: milliseconds since an arbitrary origin.
struct TestInstant: InstantProtocol, CustomStringConvertible {
    var offset: Duration
    static func ms(_ n: Int64) -> TestInstant { TestInstant(offset: .milliseconds(n)) }
    func advanced(by duration: Duration) -> TestInstant { TestInstant(offset: offset + duration) }
    func duration(to other: TestInstant) -> Duration { other.offset - offset }
    static func < (a: TestInstant, b: TestInstant) -> Bool { a.offset < b.offset }
    var description: String { "\(offset)" }
}

@Suite struct DebounceStateMachineTests {
    typealias Machine = DebounceStateMachine<String, TestInstant>

    @Test func idleMachineHasNoDeadlineAndFiresNothing() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(1000))
        #expect(m.isIdle)
        #expect(m.nextDeadline == nil)
        #expect(m.fire(now: .ms(10_000)) == [])
        #expect(m.flush() == [])
    }

    @Test func singleEventIsDueQuietAfterIt() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(1000))
        m.received("a", at: .ms(50))
        #expect(!m.isIdle)
        #expect(m.nextDeadline == .ms(150))
        #expect(m.fire(now: .ms(149)) == [])
        #expect(m.fire(now: .ms(150)) == ["a"])
        #expect(m.isIdle)
        #expect(m.fire(now: .ms(1000)) == [], "a key fires once per pending period")
    }

    @Test func laterEventPostponesTheDeadline() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(1000))
        m.received("a", at: .ms(0))
        m.received("a", at: .ms(80))
        #expect(m.nextDeadline == .ms(180))
        #expect(m.fire(now: .ms(100)) == [])
        #expect(m.fire(now: .ms(180)) == ["a"])
    }

    /// vim's save: close-write, then an attribute change a few milliseconds later. The latter
    /// starts a period when nothing is pending (a lone chmod or touch) but never extends one.
    @Test func anEventThatDoesNotRestartQuietLeavesAPendingDeadlineAlone() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(1000))
        m.received("a", at: .ms(0))
        m.received("a", at: .ms(7), restartsQuiet: false)
        #expect(m.nextDeadline == .ms(100))
        #expect(m.fire(now: .ms(100)) == ["a"])
        m.received("a", at: .ms(200), restartsQuiet: false)
        #expect(m.nextDeadline == .ms(300), "on an idle key it starts a quiet period")
        m.received("a", at: .ms(250))
        #expect(m.nextDeadline == .ms(350), "a content event still extends it")
        #expect(m.fire(now: .ms(350)) == ["a"])
    }

    @Test func constantEventsAreCappedAtMaxWaitFromTheFirst() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(300))
        for t in stride(from: Int64(0), through: 290, by: 50) {
            m.received("a", at: .ms(t))
            #expect(m.fire(now: .ms(t)) == [])
        }
        #expect(m.nextDeadline == .ms(300))
        #expect(m.fire(now: .ms(300)) == ["a"])
    }

    @Test func maxWaitBelowQuietIsRaisedToQuiet() {
        let m = Machine(quiet: .milliseconds(200), maxWait: .milliseconds(50))
        #expect(m.maxWait == .milliseconds(200))
    }

    @Test func keysAreIndependentAndFireInArrivalOrder() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(1000))
        m.received("b", at: .ms(0))
        m.received("a", at: .ms(0))
        m.received("c", at: .ms(50))
        // events for c do not move a's or b's deadline
        m.received("c", at: .ms(90))
        #expect(m.nextDeadline == .ms(100))
        #expect(m.fire(now: .ms(100)) == ["b", "a"])
        #expect(m.nextDeadline == .ms(190))
        #expect(m.fire(now: .ms(190)) == ["c"])
        #expect(m.isIdle)
    }

    @Test func flushReturnsEverythingPendingInArrivalOrder() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(1000))
        m.received("x", at: .ms(0))
        m.received("y", at: .ms(1))
        m.received("x", at: .ms(2))
        #expect(m.flush() == ["x", "y"])
        #expect(m.isIdle)
        #expect(m.nextDeadline == nil)
    }

    @Test func keyPendingAgainAfterFiringStartsANewPeriod() {
        var m = Machine(quiet: .milliseconds(100), maxWait: .milliseconds(300))
        m.received("a", at: .ms(0))
        #expect(m.fire(now: .ms(100)) == ["a"])
        m.received("a", at: .ms(250))
        // maxWait counts from the new first event, not the old one
        #expect(m.nextDeadline == .ms(350))
    }
}
