@testable import KVWarm
import Testing

/// The monitor's decisions on virtual time: instants are made up, nothing sleeps.
@Suite struct BackendCheckTests {
    static func slot(_ id: Int, nCtx: Int = 4096, task: Int? = nil) -> LlamaClient.SlotInfo {
        LlamaClient.SlotInfo(id: id, nCtx: nCtx, isProcessing: false, idTask: task, promptTokens: nil)
    }

    static func fp(model: String = "/m.gguf", build: String = "b1") -> BackendFingerprint {
        BackendFingerprint(modelPath: model, totalSlots: 2, nCtx: 4096, chatTemplateSHA256: "t", nParams: 1,
                           modelSize: 1, nVocab: 1, nEmbd: 1, nCtxTrain: 1, kvTag: nil, build: build)
    }

    let t0 = ContinuousClock.now
    let every: Duration = .seconds(60)
    var slots: BackendCheck.Probe { .up(slots: [Self.slot(0, task: 4), Self.slot(1)]) }

    @Test func anIdleCheckReadsNothingMoreUntilTheFingerprintIntervalPasses() {
        var c = BackendCheck(down: false)
        #expect(c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every) == .readFingerprint(restarted: false),
                "the first check reads the fingerprint once")
        #expect(c.read(.success(Self.fp()), current: Self.fp()) == .record(Self.fp()))
        #expect(c.recorded(Self.fp(), changed: false, restarted: false, previousBuild: "b1") == .none)
        #expect(c.probed(slots, known: Self.fp(), now: t0 + .seconds(5), fingerprintInterval: every) == .skip)
        #expect(c.probed(slots, known: Self.fp(), now: t0 + .seconds(59), fingerprintInterval: every) == .skip)
        #expect(c.probed(slots, known: Self.fp(), now: t0 + .seconds(61), fingerprintInterval: every)
                == .readFingerprint(restarted: false))
    }

    @Test func aRouterModelThatFailedWhileStoppingIsReportedAgainAsUnloaded() {
        var c = BackendCheck(down: false)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        let proxy = BackendError.http(status: 500, message: "proxy error: Could not establish connection")
        #expect(c.probed(.down(proxy), known: Self.fp(), now: t0 + .seconds(1), fingerprintInterval: every) == .wentDown(proxy))
        #expect(c.probed(.down(.modelUnloaded("alpha")), known: nil, now: t0 + .seconds(2), fingerprintInterval: every)
                == .wentDown(.modelUnloaded("alpha")), "the unload is said, so status shows it")
        #expect(c.probed(.down(.modelUnloaded("alpha")), known: nil, now: t0 + .seconds(3), fingerprintInterval: every) == .skip)
        #expect(c.probed(slots, known: nil, now: t0 + .seconds(4), fingerprintInterval: every) == .readFingerprint(restarted: true))
        #expect(c.recorded(Self.fp(), changed: false, restarted: true, previousBuild: nil) == .all(reason: "restarted", resetSlots: true))
        #expect(c.probed(.down(.modelUnloaded("alpha")), known: Self.fp(), now: t0 + .seconds(5), fingerprintInterval: every)
                == .wentDown(.modelUnloaded("alpha")), "the next unload is a new episode")
    }

    @Test func aModelFoundUnloadedAtStartupIsNotReportedAgainButItsLoadRewarms() {
        var c = BackendCheck(down: true, unloaded: true)
        #expect(c.probed(.down(.modelUnloaded("alpha")), known: nil, now: t0, fingerprintInterval: every) == .skip,
                "startup said it already")
        #expect(c.probed(slots, known: nil, now: t0 + .seconds(1), fingerprintInterval: every) == .readFingerprint(restarted: true))
        #expect(c.recorded(Self.fp(), changed: false, restarted: true, previousBuild: nil) == .all(reason: "restarted", resetSlots: true))
    }

    @Test func downThenUpIsARestartThatRewarmsEverything() {
        var c = BackendCheck(down: false)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        #expect(c.probed(.down(.unreachable("refused")), known: Self.fp(), now: t0 + .seconds(5), fingerprintInterval: every)
                == .wentDown(.unreachable("refused")))
        #expect(c.probed(.down(.unreachable("refused")), known: nil, now: t0 + .seconds(10), fingerprintInterval: every)
                == .skip, "said once per outage")
        #expect(c.down)
        #expect(c.probed(slots, known: nil, now: t0 + .seconds(15), fingerprintInterval: every)
                == .readFingerprint(restarted: true))
        #expect(c.read(.success(Self.fp()), current: nil) == .record(Self.fp()))
        #expect(c.recorded(Self.fp(), changed: false, restarted: true, previousBuild: nil)
                == .all(reason: "restarted", resetSlots: true))
        #expect(!c.down)
    }

    @Test func aBackendThatIsDownIsProbedEverySecondUntilItIsBack() {
        var c = BackendCheck(down: false)
        #expect(c.nextInterval(configured: .seconds(30)) == .seconds(30))
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        _ = c.probed(.down(.unreachable("refused")), known: Self.fp(), now: t0 + .seconds(30), fingerprintInterval: every)
        #expect(c.nextInterval(configured: .seconds(30)) == BackendCheck.downInterval)
        #expect(c.nextInterval(configured: .milliseconds(200)) == .milliseconds(200), "never slower than configured")
        _ = c.probed(.down(.loading), known: nil, now: t0 + .seconds(31), fingerprintInterval: every)
        #expect(c.nextInterval(configured: .seconds(30)) == .seconds(1), "a server loading its model counts as down")
        _ = c.probed(slots, known: nil, now: t0 + .seconds(32), fingerprintInterval: every)
        _ = c.read(.success(Self.fp()), current: nil)
        _ = c.recorded(Self.fp(), changed: false, restarted: true, previousBuild: nil)
        #expect(c.nextInterval(configured: .seconds(30)) == .seconds(30), "back to the configured interval once up")
        #expect(BackendCheck(down: true).nextInterval(configured: .seconds(5)) == .seconds(1), "a degraded start polls fast too")
    }

    @Test func whileRequestsComeInTheSlotsAreReadAtTheActiveInterval() {
        let up = BackendCheck(down: false)
        #expect(up.nextInterval(configured: .seconds(5), active: .milliseconds(250)) == .milliseconds(250))
        #expect(up.nextInterval(configured: .milliseconds(100), active: .milliseconds(250)) == .milliseconds(100),
                "never slower than configured")
        #expect(up.nextInterval(configured: .seconds(5), active: nil) == .seconds(5))
        #expect(BackendCheck(down: true).nextInterval(configured: .seconds(5), active: .milliseconds(250)) == .seconds(1),
                "a backend that is down is probed once a second, traffic or not")
    }

    @Test func taskIdsGoingBackwardsAreARestartWithoutAnOutage() {
        var c = BackendCheck(down: false)
        _ = c.probed(.up(slots: [Self.slot(0, task: 90)]), known: Self.fp(), now: t0, fingerprintInterval: every)
        _ = c.read(.success(Self.fp()), current: Self.fp())
        #expect(c.probed(.up(slots: [Self.slot(0, task: 3)]), known: Self.fp(), now: t0 + .seconds(5), fingerprintInterval: every)
                == .readFingerprint(restarted: true), "read at once, not after the interval")
    }

    @Test func aChangedSlotShapeReadsTheFingerprintAtOnce() {
        var c = BackendCheck(down: false)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        _ = c.read(.success(Self.fp()), current: Self.fp())
        let three: BackendCheck.Probe = .up(slots: [Self.slot(0, task: 5), Self.slot(1), Self.slot(2)])
        #expect(c.probed(three, known: Self.fp(), now: t0 + .seconds(5), fingerprintInterval: every)
                == .readFingerprint(restarted: false))
    }

    @Test func aChangeMustReadTheSameTwice() {
        var c = BackendCheck(down: false)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        let other = Self.fp(model: "/other.gguf")
        #expect(c.read(.success(other), current: Self.fp()) == .confirm(other))
        #expect(c.confirmed(other, again: Self.fp(model: "/third.gguf")) == .unstable)
        _ = c.probed(slots, known: Self.fp(), now: t0 + .seconds(61), fingerprintInterval: every)
        #expect(c.read(.success(other), current: Self.fp()) == .confirm(other))
        #expect(c.confirmed(other, again: nil) == .skip, "unstable is said once per episode")
        _ = c.probed(slots, known: Self.fp(), now: t0 + .seconds(122), fingerprintInterval: every)
        #expect(c.read(.success(other), current: Self.fp()) == .confirm(other))
        #expect(c.confirmed(other, again: other) == .record(other))
        #expect(c.recorded(other, changed: true, restarted: false, previousBuild: "b1")
                == .all(reason: "fingerprint_changed", resetSlots: false))
    }

    @Test func aNewBuildIsARestartButNotAChange() {
        var c = BackendCheck(down: false)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        #expect(c.recorded(Self.fp(build: "b2"), changed: false, restarted: false, previousBuild: "b1")
                == .all(reason: "restarted", resetSlots: true))
    }

    @Test func readFailuresAreSaidOnceAndReadAgainAtTheNextCheck() {
        var c = BackendCheck(down: false)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        #expect(c.read(.failure(.timeout), current: Self.fp()) == .readFailed(.timeout))
        #expect(c.probed(slots, known: Self.fp(), now: t0 + .seconds(5), fingerprintInterval: every)
                == .readFingerprint(restarted: false), "no waiting for the interval after a failed read")
        #expect(c.read(.failure(.timeout), current: Self.fp()) == .skip)
        _ = c.probed(slots, known: Self.fp(), now: t0 + .seconds(10), fingerprintInterval: every)
        #expect(c.read(.failure(.unauthorized), current: Self.fp()) == .skip, "401 is the warm path's to report")
        _ = c.probed(slots, known: Self.fp(), now: t0 + .seconds(15), fingerprintInterval: every)
        #expect(c.read(.success(Self.fp()), current: Self.fp()) == .record(Self.fp()))
        _ = c.probed(slots, known: Self.fp(), now: t0 + .seconds(80), fingerprintInterval: every)
        #expect(c.read(.failure(.timeout), current: Self.fp()) == .readFailed(.timeout), "a new episode is said again")
    }

    @Test func noSlotsEndpointReadsTheFingerprintAtEveryCheck() {
        var c = BackendCheck(down: false)
        for i in 0..<3 {
            #expect(c.probed(.up(slots: nil), known: Self.fp(), now: t0 + .seconds(5 * i), fingerprintInterval: every)
                    == .readFingerprint(restarted: false))
        }
    }

    @Test func unauthorizedAndCancelledProbes() {
        var c = BackendCheck(down: false)
        #expect(c.probed(.unauthorized, known: Self.fp(), now: t0, fingerprintInterval: every) == .skip)
        #expect(c.probed(.cancelled, known: Self.fp(), now: t0, fingerprintInterval: every) == .stop)
        _ = c.probed(slots, known: Self.fp(), now: t0, fingerprintInterval: every)
        #expect(c.read(.failure(.cancelled), current: nil) == .stop)
    }
}
