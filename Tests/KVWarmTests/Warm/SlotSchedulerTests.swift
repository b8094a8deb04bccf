import Testing
@testable import KVWarm

@Suite struct SlotSchedulerTests {
    func slot(_ id: Int, busy: Bool = false, tokens: Int? = nil) -> LlamaClient.SlotInfo {
        LlamaClient.SlotInfo(id: id, nCtx: 8192, isProcessing: busy, idTask: tokens == nil ? nil : 1, promptTokens: tokens)
    }

    @Test func aBusySlotIsNeverChosenEvenWhenItHoldsThisTemplate() {
        let s = SlotScheduler()
        s.used(0, by: "a")
        #expect(s.choose(for: "a", from: [slot(0, busy: true, tokens: 900), slot(1, tokens: 500)]) == 1)
        #expect(s.choose(for: "a", from: [slot(0, busy: true), slot(1, busy: true)]) == nil)
    }

    @Test func theSlotThatHeldThisTemplateWins() {
        let s = SlotScheduler()
        s.used(2, by: "a")
        s.used(0, by: "b")
        #expect(s.choose(for: "a", from: [slot(0, tokens: 10), slot(1), slot(2, tokens: 900)]) == 2)
    }

    @Test func thenAnEmptySlotThenTheLeastRecentlyUsed() {
        let s = SlotScheduler()
        s.used(0, by: "a")
        s.used(1, by: "b")
        // slot 2 is empty: it wins over both occupied slots
        #expect(s.choose(for: "c", from: [slot(0, tokens: 5), slot(1, tokens: 5), slot(2)]) == 2)
        // no empty slot: the one kvwarm used longest ago (0), never the one just warmed (1)
        #expect(s.choose(for: "c", from: [slot(0, tokens: 5), slot(1, tokens: 5)]) == 0)
    }

    @Test func aTemplateHoldsOneSlotAndResetForgetsAll() {
        let s = SlotScheduler()
        s.used(0, by: "a")
        s.used(3, by: "a")  // moved: slot 0 no longer counts as a's
        #expect(s.choose(for: "a", from: [slot(0, tokens: 5), slot(3, tokens: 5)]) == 3)
        s.reset()
        #expect(s.choose(for: "a", from: [slot(0, tokens: 5), slot(3, tokens: 5)]) == 0)
    }
}
