@testable import KVWarm
import Testing

/// The keep-warm decisions on made-up slots and instants: nothing sleeps, no server.
@Suite struct KeepWarmPlannerTests {
    typealias Slot = LlamaClient.SlotInfo
    typealias Candidate = KeepWarmPlanner.Candidate

    static func slot(_ id: Int, task: Int? = nil, tokens: Int? = nil, busy: Bool = false, cached: Int? = nil) -> Slot {
        Slot(id: id, nCtx: 4096, isProcessing: busy, idTask: task, promptTokens: tokens, cachedTokens: cached)
    }

    let t0 = ContinuousClock.now
    let a = Candidate(name: "a", kvFile: "a.bin", tokens: 500)
    let b = Candidate(name: "b", kvFile: "b.bin", tokens: 900)

    // MARK: slots that keep their KV (-np N)

    @Test func aRequestOnATemplatesSlotRestoresItIntoAnIdleEmptySlotNeverABusyOrFullOne() {
        var p = KeepWarmPlanner()
        p.placed("a", slot: 0, tokens: 500)
        // first read confirms the placement (the probe left one sampled token)
        let idle = [Self.slot(0, task: 3, tokens: 501), Self.slot(1, task: 2, tokens: 80), Self.slot(2), Self.slot(3, busy: true)]
        #expect(p.observe(idle, candidates: [a], perMinute: 30, now: t0, mayRestore: true).isEmpty)
        // a conversation took slot 0
        let after = [Self.slot(0, task: 9, tokens: 640), Self.slot(1, task: 2, tokens: 80), Self.slot(2), Self.slot(3, busy: true)]
        #expect(p.observe(after, candidates: [a], perMinute: 30, now: t0 + .seconds(1), mayRestore: true)
                == [.restore(template: "a", slot: 2, kvFile: "a.bin")],
                "slot 1 holds tokens and slot 3 is busy: only empty slot 2 qualifies")
        p.restoreEnded("a", slot: 2, restoredTokens: 500)
        #expect(p.observe(after, candidates: [a], perMinute: 30, now: t0 + .seconds(2), mayRestore: true).isEmpty,
                "restored and confirmed: nothing more to do")
        #expect(p.slot(of: "a") == 2)
    }

    @Test func noEmptySlotIsReportedOnceAndNothingIsOverwritten() {
        var p = KeepWarmPlanner()
        let full = [Self.slot(0, task: 1, tokens: 700), Self.slot(1, task: 2, tokens: 800)]
        #expect(p.observe(full, candidates: [a], perMinute: 30, now: t0, mayRestore: true) == [.noRoom(templates: ["a"])])
        #expect(p.observe(full, candidates: [a], perMinute: 30, now: t0 + .seconds(1), mayRestore: true).isEmpty)
    }

    @Test func theShorterOfTwoTemplatesGetsTheLowerSlotId() {
        var p = KeepWarmPlanner()
        let empty = [Self.slot(0), Self.slot(1), Self.slot(2)]
        #expect(p.observe(empty, candidates: [b, a], perMinute: 30, now: t0, mayRestore: true)
                == [.restore(template: "a", slot: 0, kvFile: "a.bin"), .restore(template: "b", slot: 1, kvFile: "b.bin")])
    }

    @Test func nothingIsRestoredWhileAWarmPassRunsOrWhenTheBudgetIsZero() {
        var p = KeepWarmPlanner()
        let empty = [Self.slot(0), Self.slot(1)]
        #expect(p.observe(empty, candidates: [a], perMinute: 30, now: t0, mayRestore: false).isEmpty)
        #expect(p.observe(empty, candidates: [a], perMinute: 0, now: t0, mayRestore: true).isEmpty)
    }

    @Test func theBudgetAllowsNRestoresInAnyMinuteAndIsReportedOncePerEpisode() {
        var p = KeepWarmPlanner()
        var now = t0
        var restores = 0
        var spent = 0
        // every read shows the template's slot taken by a request: it is displaced every time
        for i in 0..<6 {
            let slots = [Self.slot(0, task: 100 + i, tokens: 700), Self.slot(1), Self.slot(2)]
            for action in p.observe(slots, candidates: [a], perMinute: 2, now: now, mayRestore: true) {
                switch action {
                case .restore(_, let slot, _):
                    restores += 1
                    p.restoreEnded("a", slot: slot, restoredTokens: 500)
                    // the next read finds it taken again
                    p.placed("a", slot: 0, tokens: 500)
                case .budgetSpent(let name, let n):
                    #expect(name == "a" && n == 2)
                    spent += 1
                default: Issue.record("unexpected \(action)")
                }
            }
            now += .seconds(5)
        }
        #expect(restores == 2, "two restores within the first 30 s")
        #expect(spent == 1, "said once")
        let later = [Self.slot(0, task: 999, tokens: 700), Self.slot(1), Self.slot(2)]
        #expect(p.observe(later, candidates: [a], perMinute: 2, now: t0 + .seconds(61), mayRestore: true)
                == [.restore(template: "a", slot: 1, kvFile: "a.bin")], "a minute after the first restore it may go again")
    }

    @Test func anIdleSlotEmptiedWithoutARequestOnItIsSeenAsClearingOnce() {
        var p = KeepWarmPlanner()
        p.placed("a", slot: 0, tokens: 500)
        p.placed("b", slot: 1, tokens: 900)
        let warm = [Self.slot(0, task: 5, tokens: 500), Self.slot(1, task: 6, tokens: 900), Self.slot(2, task: 7, tokens: 30)]
        _ = p.observe(warm, candidates: [a, b], perMinute: 30, now: t0, mayRestore: false)
        let swept = [Self.slot(0, task: 5, tokens: 0), Self.slot(1, task: 6, tokens: 0), Self.slot(2, task: 8, tokens: 40, busy: true)]
        let actions = p.observe(swept, candidates: [a, b], perMinute: 30, now: t0 + .seconds(1), mayRestore: false)
        #expect(actions.count == 1)
        if case .slotCleared = actions.first {} else { Issue.record("expected slotCleared, got \(actions)") }
    }

    @Test func changingSlotsMakeItActiveForAMinute() {
        var p = KeepWarmPlanner()
        #expect(!p.active(at: t0))
        _ = p.observe([Self.slot(0, task: 1)], candidates: [], perMinute: 30, now: t0, mayRestore: true)
        #expect(!p.active(at: t0), "a first read is no change")
        _ = p.observe([Self.slot(0, task: 2)], candidates: [], perMinute: 30, now: t0 + .seconds(1), mayRestore: true)
        #expect(p.active(at: t0 + .seconds(30)))
        #expect(!p.active(at: t0 + .seconds(62)))
    }

    // MARK: a server that clears idle slots: templates live in its RAM cache

    func clearing(_ p: inout KeepWarmPlanner, _ slots: [Slot], at s: Int, may: Bool = true) -> [KeepWarmPlanner.Action] {
        p.observe(slots, candidates: [a, b], perMinute: 30, now: t0 + .seconds(s), mayRestore: may, clearing: true)
    }

    /// A planner for a clearing server that has published a and b through slot 0 of `idle`.
    func bothInTheCache(_ idle: [Slot]) -> KeepWarmPlanner {
        var p = KeepWarmPlanner()
        p.placed("a", slot: 0, tokens: 500, prompt: "A")
        p.placed("b", slot: 1, tokens: 900, prompt: "B")
        #expect(clearing(&p, idle, at: 0).count == 2)
        p.publishEnded("a", ok: true)
        p.publishEnded("b", ok: true)
        p.ownRequestsDone(idle, own: 0, candidates: [a, b])
        return p
    }

    @Test func clearingServersGetEveryTemplatePublishedThroughOneIdleSlot() {
        var p = KeepWarmPlanner()
        p.placed("a", slot: 0, tokens: 500, prompt: "A")
        p.placed("b", slot: 1, tokens: 900, prompt: "B")
        let slots = [Self.slot(0, task: 1, tokens: 0), Self.slot(1, task: 2, tokens: 901), Self.slot(2, task: 3, tokens: 0)]
        #expect(clearing(&p, slots, at: 0) == [
            .publish(template: "a", slot: 0, kvFile: "a.bin", prompt: "A", tokens: 500),
            .publish(template: "b", slot: 0, kvFile: "b.bin", prompt: "B", tokens: 900),
        ], "slot 1 holds b's warm: slot 0 serves both publishes")
        #expect(clearing(&p, slots, at: 0).isEmpty, "publishes in flight are not handed out twice")
        p.publishEnded("a", ok: true)
        p.publishEnded("b", ok: false)
        p.ownRequestsDone(slots, own: 0, candidates: [a, b])
        #expect(clearing(&p, slots, at: 1) == [.publish(template: "b", slot: 0, kvFile: "b.bin", prompt: "B", tokens: 900)],
                "the one that failed goes again")
    }

    @Test func aRequestSeenReusingExactlyATemplatesLengthHasTakenItFromTheCache() {
        let idle = [Self.slot(0, task: 1, tokens: 3), Self.slot(1, task: 2, tokens: 0)]
        var p = bothInTheCache(idle)
        // a new conversation loaded b+sentinel: it reuses exactly b's 900 tokens while it runs
        let running = [Self.slot(0, task: 1, tokens: 3), Self.slot(1, task: 20, tokens: 960, busy: true, cached: 900)]
        #expect(clearing(&p, running, at: 1) == [.publish(template: "b", slot: 0, kvFile: "b.bin", prompt: "B", tokens: 900)])
        p.publishEnded("b", ok: true)
        p.ownRequestsDone(running, own: 0, candidates: [a, b])
        // a continuation that reused more than any template took none of them
        let other = [Self.slot(0, task: 1, tokens: 3), Self.slot(1, task: 21, tokens: 1500, busy: true, cached: 1400)]
        #expect(clearing(&p, other, at: 2).isEmpty)
        // it ends; it was seen running, so nothing else is suspected
        let ended = [Self.slot(0, task: 1, tokens: 3), Self.slot(1, task: 21, tokens: 0)]
        #expect(clearing(&p, ended, at: 3).isEmpty)
    }

    @Test func aTaskThatRanUnseenBetweenTwoReadsMayHaveTakenAnyTemplate() {
        let idle = [Self.slot(0, task: 1, tokens: 3), Self.slot(1, task: 2, tokens: 0)]
        var p = bothInTheCache(idle)
        #expect(clearing(&p, idle, at: 1).isEmpty)
        // kvwarm's own requests on slot 0 do not count
        let own = [Self.slot(0, task: 7, tokens: 3), Self.slot(1, task: 2, tokens: 0)]
        p.ownRequestsDone(own, own: 0, candidates: [a, b])
        #expect(clearing(&p, own, at: 2).isEmpty)
        // slot 1 ran task 9 from start to end between two reads
        let unseen = [Self.slot(0, task: 7, tokens: 3), Self.slot(1, task: 9, tokens: 0)]
        #expect(clearing(&p, unseen, at: 3).count == 2, "both templates are published again")
    }

    @Test func withoutItsWarmPromptATemplateIsNotPublished() {
        var p = KeepWarmPlanner()
        // a template never warmed by this daemon (only its record is known): no prompt to extend
        #expect(clearing(&p, [Self.slot(0)], at: 0).isEmpty)
    }

    @Test func aServerFoundClearingLaterSwitchesFromSlotsToTheCache() {
        var p = KeepWarmPlanner()
        p.placed("a", slot: 0, tokens: 500, prompt: "A")
        let slots = [Self.slot(0, task: 1, tokens: 500), Self.slot(1)]
        #expect(p.observe(slots, candidates: [a], perMinute: 30, now: t0, mayRestore: true).isEmpty)
        #expect(p.observe(slots, candidates: [a], perMinute: 30, now: t0 + .seconds(1), mayRestore: true, clearing: true)
                == [.publish(template: "a", slot: 1, kvFile: "a.bin", prompt: "A", tokens: 500)])
    }
}
