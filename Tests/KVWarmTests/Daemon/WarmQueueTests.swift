import Testing
@testable import KVWarm

/// The queue's decisions, without any task or clock: each call's actions are asserted.
@Suite struct WarmQueueTests {
    let backoff = Backoff(base: .seconds(1), cap: .seconds(30))

    @Test func nothingStartsBeforeStartAndAnIdleStartIsDrained() {
        var q = WarmQueue(backoff: backoff)
        #expect(q.enqueue(["a", "b"]) == [])
        #expect(q.start() == [.startPass("a")])
        var idle = WarmQueue(backoff: backoff)
        #expect(idle.start() == [.drained])
    }

    @Test func onePassAtATimeInOrderThenDrained() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        #expect(q.enqueue(["a", "b", "a"]) == [.startPass("a")])
        #expect(q.queue == ["b"])
        #expect(q.passEnded("a", .warmed(.prefill), random: 0) == [.startPass("b")])
        #expect(q.passEnded("b", .warmed(.restore), random: 0) == [.drained])
        #expect(q.isIdle)
        #expect(q.completed == 2)
    }

    @Test func aTemplateChangedDuringItsPassIsQueuedOnceMore() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a"])
        #expect(q.enqueue(["a"]) == [])
        #expect(q.enqueue(["a"]) == [])
        #expect(q.queue == ["a"], "queued once however often it changes")
        #expect(q.passEnded("a", .warmed(.prefill), random: 0) == [.startPass("a")])
        #expect(q.passEnded("a", .warmed(.prefill), random: 0) == [.drained])
    }

    @Test func backendFailuresRetryWithGrowingBackoffAndSuccessResetsIt() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a"])
        #expect(q.passEnded("a", .backendFailed(.timeout), random: 0)
                == [.scheduleRetry("a", after: .milliseconds(500), attempt: 1), .drained])
        #expect(q.isRetrying("a"))
        #expect(q.retryFired("a") == [.startPass("a")])
        #expect(q.passEnded("a", .backendFailed(.unauthorized), random: 1)
                == [.scheduleRetry("a", after: .seconds(2), attempt: 2), .drained], "401 retries too")
        #expect(q.retryFired("a") == [.startPass("a")])
        #expect(q.passEnded("a", .warmed(.prefill), random: 0) == [.drained])
        _ = q.enqueue(["a"])
        #expect(q.passEnded("a", .backendFailed(.timeout), random: 1)
                == [.scheduleRetry("a", after: .seconds(1), attempt: 1), .drained], "back to the first delay")
    }

    @Test func templateFailuresAndCancellationDoNotRetry() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a", "b"])
        #expect(q.passEnded("a", .templateFailed("missing include"), random: 0) == [.startPass("b")])
        #expect(q.passEnded("b", .backendFailed(.cancelled), random: 0) == [.drained])
        #expect(!q.isRetrying("a") && !q.isRetrying("b"))
    }

    @Test func anEditDropsThePendingRetryAndAStaleTimerIsIgnored() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a"])
        _ = q.passEnded("a", .backendFailed(.timeout), random: 0)
        #expect(q.enqueue(["a"]) == [.cancelRetry("a"), .startPass("a")])
        #expect(q.retryFired("a") == [], "the dropped timer fires late: nothing happens")
        #expect(q.inFlight == "a" && q.queue.isEmpty)
    }

    @Test func aFailedTemplateAlreadyQueuedAgainIsNotAlsoRetried() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a"])
        _ = q.enqueue(["a"])
        #expect(q.passEnded("a", .backendFailed(.timeout), random: 0) == [.startPass("a")])
        #expect(!q.isRetrying("a"))
    }

    @Test func removingTemplatesCancelsTheirRetryAndTheirPassInFlight() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a"])
        _ = q.passEnded("a", .backendFailed(.timeout), random: 0)
        _ = q.enqueue(["b", "c"])
        #expect(q.remove(["a", "b", "c"]) == [.cancelRetry("a"), .cancelInFlight])
        #expect(q.queue.isEmpty)
        #expect(q.passEnded("b", .backendFailed(.cancelled), random: 0) == [.drained])
    }

    @Test func stopCancelsEverythingAndRefusesNewWork() {
        var q = WarmQueue(backoff: backoff)
        _ = q.start()
        _ = q.enqueue(["a"])
        _ = q.passEnded("a", .backendFailed(.timeout), random: 0)
        _ = q.enqueue(["b", "c"])
        #expect(q.stop() == [.cancelRetry("a"), .cancelInFlight])
        #expect(q.stopped && !q.running)
        #expect(q.enqueue(["d"]) == [])
        #expect(q.passEnded("b", .backendFailed(.timeout), random: 0) == [], "no retry and no next pass after stop")
        #expect(q.start() == [])
    }
}
