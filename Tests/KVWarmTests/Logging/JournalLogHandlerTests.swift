import Logging
import Testing
@testable import KVWarm

@Suite struct JournalLogHandlerTests {
    private func makeLogger(_ sink: RecordingJournalSink, level: Logger.Level = .trace) -> Logger {
        Logger(label: "test") { label in JournalLogHandler(label: label, level: level, sink: sink, fallback: nil) }
    }

    @Test func recordCarriesStandardFieldsAndLocation() {
        let sink = RecordingJournalSink()
        let logger = makeLogger(sink)
        logger.info("warmed template", metadata: .stage(.warm, .warmDone, template: "chat.jinja")); let line = #line
        let f = sink.last
        #expect(f["MESSAGE"] == "warmed template")
        #expect(f["PRIORITY"] == "6")
        #expect(f["SYSLOG_IDENTIFIER"] == "kvwarm")
        #expect(f["CODE_FILE"] == #fileID)
        #expect(f["CODE_LINE"] == String(line))
        #expect(f["CODE_FUNC"] == #function)
        #expect(f["STAGE"] == "warm")
        #expect(f["TEMPLATE"] == "chat.jinja")
        #expect(f["MESSAGE_ID"] == MessageID.warmDone.rawValue)
        // Fixed fields come first, in a stable order; metadata follows sorted.
        #expect(sink.records.last!.map(\.0) == [
            "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
            "MESSAGE_ID", "STAGE", "TEMPLATE",
        ])
    }

    @Test(arguments: [
        (Logger.Level.trace, "7"), (.debug, "7"), (.info, "6"), (.notice, "5"), (.warning, "4"),
        (.error, "3"), (.critical, "2"),
    ])
    func levelMapsToPriority(level: Logger.Level, priority: String) {
        let sink = RecordingJournalSink()
        makeLogger(sink).log(level: level, "m")
        #expect(sink.last["PRIORITY"] == priority)
    }

    @Test func levelFilterApplies() {
        let sink = RecordingJournalSink()
        let logger = makeLogger(sink, level: .notice)
        logger.info("dropped")
        logger.notice("kept")
        #expect(sink.records.count == 1)
        #expect(sink.last["MESSAGE"] == "kept")
    }

    @Test func metadataMergesWithPerCallWinning() {
        let sink = RecordingJournalSink()
        var logger = makeLogger(sink)
        logger[metadataKey: LogField.stage] = "render"
        logger[metadataKey: LogField.digest] = "abc"
        logger.warning("x", metadata: [LogField.stage: "persist", LogField.durationMS: "12"])
        let f = sink.last
        #expect(f["STAGE"] == "persist")
        #expect(f["DIGEST"] == "abc")
        #expect(f["DURATION_MS"] == "12")
        #expect(sink.records.last!.filter { $0.0 == "STAGE" }.count == 1)
    }

    @Test func metadataProviderIsMergedBelowPerCall() {
        let sink = RecordingJournalSink()
        let provider = Logger.MetadataProvider { ["slot": "3", "stage": "backend"] }
        let logger = Logger(label: "t") { JournalLogHandler(label: $0, level: .trace, sink: sink, fallback: nil, metadataProvider: provider) }
        logger.info("x", metadata: ["stage": "warm"])
        #expect(sink.last["SLOT"] == "3")
        #expect(sink.last["STAGE"] == "warm")
    }

    @Test func invalidKeyNamesAreSanitised() {
        let sink = RecordingJournalSink()
        makeLogger(sink).info("x", metadata: [
            "db.table": "t", "http-status": "200", "_private": "p", "9lives": "c", "": "e",
            "message": "collides", "ünï": "u", "ok_NAME_2": "k",
        ])
        let names = Set(sink.records.last!.map(\.0))
        for n in ["DB_TABLE", "HTTP_STATUS", "F__PRIVATE", "F_9LIVES", "F_", "F_MESSAGE", "F__N_", "OK_NAME_2"] {
            #expect(names.contains(n), "\(n) missing from \(names.sorted())")
        }
        #expect(sink.last["MESSAGE"] == "x")
        #expect(sink.last["F_MESSAGE"] == "collides")
        for n in names {
            #expect(!n.hasPrefix("_") && !n.first!.isNumber)
            #expect(n.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }, "\(n)")
            #expect(n.utf8.count <= 64)
        }
    }

    @Test func longNamesAreTruncatedTo64() {
        #expect(JournalFields.sanitize(String(repeating: "a", count: 100)) == String(repeating: "A", count: 64))
    }

    @Test func nestedMetadataIsFlattened() {
        let sink = RecordingJournalSink()
        makeLogger(sink).info("x", metadata: [
            "backend": ["url": "http://h:8080", "slot.id": "2", "inner": ["deep": "d"]],
            "tokens": ["a", ["k": "v"], .array(["n"])],
            "empty": [:],
        ])
        let f = sink.last
        #expect(f["BACKEND_URL"] == "http://h:8080")
        #expect(f["BACKEND_SLOT_ID"] == "2")
        #expect(f["BACKEND_INNER_DEEP"] == "d")
        #expect(f["TOKENS"] == #"["a",{"k":"v"},["n"]]"#)
        #expect(f["EMPTY"] == "{}")
    }

    @Test func newlinesInValuesAreKeptVerbatim() {
        let sink = RecordingJournalSink()
        makeLogger(sink).error("line one\nline two", metadata: [LogField.reason: "a\nb"])
        let raw = Dictionary(sink.records.last!, uniquingKeysWith: { _, b in b })
        #expect(raw["MESSAGE"] == "line one\nline two")
        #expect(raw["REASON"] == "a\nb")
    }

    @Test func errorIsRecorded() {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
        let sink = RecordingJournalSink()
        let handler = JournalLogHandler(label: "t", level: .trace, sink: sink, fallback: nil)
        handler.log(event: LogEvent(level: .error, message: "failed", error: Boom(), metadata: nil,
                                    source: nil, file: "F.swift", function: "f()", line: 7))
        #expect(sink.last["ERROR"] == "boom")
        #expect(sink.last["CODE_FILE"] == "F.swift")
        #expect(sink.last["CODE_LINE"] == "7")
        #expect(sink.last["CODE_FUNC"] == "f()")
    }

    @Test func failingSinkFallsBackToText() {
        let sink = RecordingJournalSink(result: -111)
        let out = RecordingOutput()
        let logger = Logger(label: "t") { JournalLogHandler(label: $0, sink: sink, fallback: out) }
        logger.info("hello", metadata: .stage(.watch, .watchEvent))
        #expect(out.lines.count == 1)
        #expect(out.lines.first?.hasSuffix(" INFO   hello STAGE=watch journal_errno=111") == true, "\(out.lines)")
    }

    @Test func handlerHasValueSemantics() {
        let sink = RecordingJournalSink()
        var a = JournalLogHandler(label: "t", level: .info, sink: sink, fallback: nil)
        var b = a
        b.logLevel = .error
        b[metadataKey: "x"] = "1"
        #expect(a.logLevel == .info)
        #expect(a[metadataKey: "x"] == nil)
        a.metadata = ["y": "2"]
        #expect(b.metadata["y"] == nil)
    }

    @Test func systemdSinkWithoutJournalDoesNotFail() {
        // No journald on a build machine: sd_journal_sendv returns 0 (socket absent) or a negative
        // errno; either way it must not crash, and values with newlines must be accepted.
        let r = SystemdJournalSink().send([("MESSAGE", Array("kvwarm test\nsecond".utf8)), ("PRIORITY", Array("7".utf8))])
        #expect(r <= 0)
        #expect(SystemdJournalSink().send([]) == 0)
    }
}
