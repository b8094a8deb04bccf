import Testing
@testable import KVWarm

@Suite struct LogFieldsTests {
    @Test func messageIDsAreDistinct128BitLowercaseHex() {
        let ids = MessageID.allCases.map(\.rawValue)
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.count == 32)
            #expect(id.allSatisfy { "0123456789abcdef".contains($0) })
        }
    }

    @Test func fieldNamesAreValidJournalFieldNames() {
        let names = [LogField.stage, LogField.template, LogField.digest, LogField.mode, LogField.outcome,
                     LogField.reason, LogField.durationMS, LogField.promptTokens, LogField.cachedTokens,
                     LogField.messageID, LogField.slot, LogField.kvFile, LogField.path, LogField.hint]
        for n in names {
            #expect(!n.hasPrefix("_"))
            #expect(n.allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" }, "\(n)")
        }
    }
}
