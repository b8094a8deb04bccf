@testable import KVWarm
import Testing

/// Reading `GET /slots` after the startup warm: cleared earlier slots mean the server clears
/// idle slots; kept ones mean it does not; anything else cannot tell.
@Suite struct SlotPolicyGuardTests {
    static func slot(_ id: Int, tokens: Int?, busy: Bool = false) -> LlamaClient.SlotInfo {
        LlamaClient.SlotInfo(id: id, nCtx: 4096, isProcessing: busy, idTask: 1, promptTokens: tokens)
    }

    @Test func earlierSlotsClearedMeansTheServerClearsIdleSlots() {
        let slots = [Self.slot(0, tokens: 0), Self.slot(1, tokens: 0), Self.slot(2, tokens: 900), Self.slot(3, tokens: nil)]
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [0, 1, 2], slots: slots) == true)
    }

    @Test func earlierSlotsKeepingTheirTokensMeansItDoesNot() {
        let slots = [Self.slot(0, tokens: 812), Self.slot(1, tokens: 640), Self.slot(2, tokens: 900)]
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [0, 1, 2], slots: slots) == false)
    }

    @Test func oneSlotABusySlotOrAMixCannotTell() {
        let slots = [Self.slot(0, tokens: 0), Self.slot(1, tokens: 640, busy: true), Self.slot(2, tokens: 900)]
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [2], slots: slots) == nil, "one template: nothing to compare")
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [2, 2], slots: slots) == nil, "the same slot twice")
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [1, 2], slots: slots) == nil, "a user's request is in slot 1")
        let mixed = [Self.slot(0, tokens: 0), Self.slot(1, tokens: 640), Self.slot(2, tokens: 900)]
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [0, 1, 2], slots: mixed) == nil)
        #expect(SlotPolicyGuard.idleSlotsCleared(warmed: [5, 2], slots: mixed) == nil, "an unknown slot")
    }
}
