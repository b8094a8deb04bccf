import Glibc
import Logging
import Testing
@testable import KVWarm

@Suite struct TextLogHandlerTests {
    private func logger(_ out: RecordingOutput, level: Logger.Level = .info) -> Logger {
        Logger(label: "t") { TextLogHandler(label: $0, level: level, output: out, clock: { "12:00:00.000" }) }
    }

    @Test func lineHasTimeLevelTemplateAndTheSentenceOnly() {
        let out = RecordingOutput()
        var meta = Logger.Metadata.stage(.warm, .warmDone, template: "chat.jinja")
        meta[LogField.durationMS] = "42"
        meta[LogField.outcome] = "ok"
        logger(out).info("warmed", metadata: meta)
        #expect(out.lines == ["12:00:00.000 INFO   chat.jinja: warmed"])
    }

    @Test func hintAndErrorAreKeptAndLevelsAreAligned() {
        let out = RecordingOutput()
        logger(out).warning("restore did not take", metadata: [
            LogField.template: "a", LogField.hint: "serve with --swa-full", LogField.reason: "restore_ineffective",
        ])
        logger(out).critical("stopped")
        logger(out).notice("ready")
        #expect(out.lines == [
            "12:00:00.000 WARN   a: restore did not take (hint: serve with --swa-full)",
            "12:00:00.000 CRIT   stopped",
            "12:00:00.000 NOTICE ready",
        ])
    }

    @Test func debugLevelAddsEveryFieldQuotedAndNewlinesEscaped() {
        let out = RecordingOutput()
        logger(out, level: .debug).error("two\nlines", metadata: [
            LogField.stage: "render", LogField.reason: "file not found", LogField.hint: #"say "hi""#,
            "path.name": "", "multi": "a\nb", LogField.messageID: "0123",
        ])
        #expect(out.lines == [
            #"12:00:00.000 ERROR  two\nlines (hint: say "hi") MULTI="a\nb" PATH_NAME="" REASON="file not found" STAGE=render"#,
        ])
        #expect(out.lines.allSatisfy { !$0.contains("\n") })
    }

    @Test func localTimeIsHoursMinutesSecondsMilliseconds() {
        let t = TextLogHandler.localTime()
        #expect(t.count == 12, "\(t)")
        #expect(t.enumerated().allSatisfy { i, c in [2, 5].contains(i) ? c == ":" : i == 8 ? c == "." : c.isNumber })
    }

    @Test func stderrOutputWritesWholeLinesToFD() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let out = StandardErrorOutput(fd: fds[1])
        let logger = Logger(label: "t") { TextLogHandler(label: $0, output: out, clock: { "T" }) }
        logger.info("one", metadata: [LogField.stage: "watch"])
        logger.notice("two")
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 4096)
        var data: [UInt8] = []
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        #expect(String(decoding: data, as: UTF8.self) == "T INFO   one\nT NOTICE two\n")
    }
}

@Suite struct JSONLogHandlerTests {
    @Test func objectHasJournalFieldsLevelAndTimestamp() {
        let out = RecordingOutput()
        let logger = Logger(label: "t") {
            JSONLogHandler(label: $0, level: .debug, output: out, timestamp: { "2025-01-02T03:04:05.000006Z" })
        }
        logger.debug("say \"hi\"\n", metadata: [LogField.stage: "hash", "nested": ["a": "1"], "list": ["x", "y"]]); let line = #line
        #expect(out.lines == [
            #"{"CODE_FILE":"\#(#fileID)","CODE_FUNC":"\#(#function)","CODE_LINE":"\#(line)","#
                + #""LEVEL":"DEBUG","LIST":"[\"x\",\"y\"]","MESSAGE":"say \"hi\"\n","NESTED_A":"1","#
                + #""PRIORITY":"7","STAGE":"hash","SYSLOG_IDENTIFIER":"kvwarm","TIMESTAMP":"2025-01-02T03:04:05.000006Z"}"#,
        ])
    }

    @Test func controlCharactersAreEscaped() {
        var s = ""
        JSONText.appendString("a\u{1}\t\\", to: &s)
        #expect(s == #""a\u0001\t\\""#)
    }

    @Test func timestampFormat() {
        #expect(JSONLogHandler.format(seconds: 0, nanoseconds: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(JSONLogHandler.format(seconds: 1_735_787_045, nanoseconds: 123_456_789) == "2025-01-02T03:04:05.123456Z")
        let now = JSONLogHandler.currentTimestamp()
        #expect(now.count == 27 && now.hasSuffix("Z"))
    }
}
