import Testing
@testable import KVWarm

@Suite struct WarmPlannerTests {
    static func record(digest: String? = "D", fingerprint: String? = "F", kvFile: String? = "t-0123456789ab.bin") -> WarmRecord {
        var r = WarmRecord()
        r.digest = digest
        r.fingerprint = fingerprint
        r.kvFile = kvFile
        return r
    }

    struct Row: CustomTestStringConvertible, Sendable {
        var label: String
        var record: WarmRecord?
        var ineffective = false
        var fileExists: Bool? = true
        var expected: WarmPlan
        var testDescription: String { label }
    }

    static let rows: [Row] = [
        Row(label: "first warm (no record)", record: nil, expected: .prefill(reason: "first warm")),
        Row(label: "record without digest", record: record(digest: nil), expected: .prefill(reason: "first warm")),
        Row(label: "content changed", record: record(digest: "OLD"), expected: .prefill(reason: "content changed")),
        Row(label: "fingerprint changed", record: record(fingerprint: "OLD"),
            expected: .prefill(reason: "backend fingerprint changed")),
        Row(label: "no fingerprint recorded", record: record(fingerprint: nil),
            expected: .prefill(reason: "backend fingerprint changed")),
        Row(label: "no kv file", record: record(kvFile: nil), expected: .prefill(reason: "no KV file recorded")),
        Row(label: "restore ineffective", record: record(), ineffective: true,
            expected: .prefill(reason: "restores do not take on this backend")),
        Row(label: "kv file gone", record: record(), fileExists: false,
            expected: .prefill(reason: "KV file t-0123456789ab.bin is gone")),
        Row(label: "restore", record: record(), expected: .restore(kvFile: "t-0123456789ab.bin")),
        Row(label: "restore when the slot dir is invisible", record: record(), fileExists: nil,
            expected: .restore(kvFile: "t-0123456789ab.bin")),
        // content change wins over everything else
        Row(label: "content changed and file gone", record: record(digest: "OLD"), ineffective: true, fileExists: false,
            expected: .prefill(reason: "content changed")),
    ]

    @Test(arguments: rows)
    func decision(_ row: Row) {
        let plan = WarmPlanner.plan(digest: "D", fingerprint: "F", record: row.record,
                                    restoreIneffective: row.ineffective, kvFileExists: { name in
            #expect(name == "t-0123456789ab.bin")
            return row.fileExists
        })
        #expect(plan == row.expected)
        #expect(plan.mode == (row.expected == .restore(kvFile: "t-0123456789ab.bin") ? .restore : .prefill))
    }
}
