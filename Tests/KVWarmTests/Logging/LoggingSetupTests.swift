import Glibc
import KVWarmTestSupport
import Logging
import Testing
@testable import KVWarm

@Suite struct LoggingSetupTests {
    /// Opens a temp file and returns its fd and `"dev:ino"`.
    private func openTempFile(_ dir: TemporaryDirectory) throws -> (Int32, String) {
        let path = try dir.write("stderr", "")
        let fd = open(path, O_RDWR | O_CLOEXEC)
        try #require(fd >= 0)
        var st = stat()
        try #require(fstat(fd, &st) == 0)
        return (fd, "\(st.st_dev):\(st.st_ino)")
    }

    @Test func autoIsJournalWhenJournalStreamMatchesStderr() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fd, devIno) = try openTempFile(dir)
        defer { close(fd) }
        #expect(LoggingSetup.resolve(.auto, environment: ["JOURNAL_STREAM": devIno], stderrFD: fd) == .journal)
    }

    @Test func autoIsTextWhenJournalStreamMismatchesOrIsMissing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fd, devIno) = try openTempFile(dir)
        defer { close(fd) }
        let dev = devIno.split(separator: ":")[0]
        for value in ["\(dev):1", "1:2", "garbage", "", "\(devIno):3", ":"] {
            #expect(LoggingSetup.resolve(.auto, environment: ["JOURNAL_STREAM": value], stderrFD: fd) == .text, "\(value)")
        }
        #expect(LoggingSetup.resolve(.auto, environment: [:], stderrFD: fd) == .text)
        #expect(LoggingSetup.resolve(.auto, environment: ["JOURNAL_STREAM": devIno], stderrFD: -1) == .text)
    }

    @Test func explicitFormatsAreKept() {
        for format in [LogFormat.journal, .text, .json] {
            #expect(LoggingSetup.resolve(format, environment: ["JOURNAL_STREAM": "1:2"]) == format)
        }
        #expect(LogFormat(rawValue: "json") == .json)
        #expect(LogFormat.allCases.map(\.rawValue) == ["auto", "journal", "text", "json"])
    }

    @Test func makeHandlerPicksTheHandlerType() {
        let out = RecordingOutput()
        let sink = RecordingJournalSink()
        #expect(LoggingSetup.makeHandler(label: "a", format: .journal, level: .info, output: out, journalSink: sink) is JournalLogHandler)
        #expect(LoggingSetup.makeHandler(label: "a", format: .json, level: .info, output: out) is JSONLogHandler)
        #expect(LoggingSetup.makeHandler(label: "a", format: .text, level: .info, output: out) is TextLogHandler)
        #expect(LoggingSetup.makeHandler(label: "a", format: .auto, level: .info, output: out, environment: [:]) is TextLogHandler)
        let handler = LoggingSetup.makeHandler(label: "a", format: .journal, level: .notice, output: out, journalSink: sink)
        #expect(handler.logLevel == .notice)
        Logger(label: "a") { _ in handler }.notice("hi")
        #expect(sink.last["MESSAGE"] == "hi")
        #expect(out.lines.isEmpty)
    }
}
