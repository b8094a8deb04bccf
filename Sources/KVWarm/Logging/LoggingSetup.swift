import Glibc
import Logging
import Synchronization

/// How log records are written.
public enum LogFormat: String, CaseIterable, Sendable {
    /// `journal` when stderr is connected to the journal (see ``LoggingSetup/resolve(_:environment:stderrFD:)``),
    /// `text` otherwise.
    case auto
    /// Native journald records via `sd_journal_sendv`, with structured fields.
    case journal
    /// One readable line per record on stderr.
    case text
    /// One JSON object per line on stderr.
    case json
}

/// A destination for whole log lines.
///
/// Implementations must be thread-safe and must never interleave two lines.
public protocol LogOutput: Sendable {
    /// Writes `line` followed by a newline, as one unit.
    func writeLine(_ line: String)
}

/// Writes lines to a file descriptor (standard error by default) with one `write(2)` per line,
/// serialised by a process-wide lock so lines from concurrent loggers never interleave.
public struct StandardErrorOutput: LogOutput {
    /// Standard error.
    public static let shared = StandardErrorOutput(fd: STDERR_FILENO)

    /// One lock for every instance: all of them usually share fd 2, and logging is not hot enough
    /// for a per-descriptor lock to matter.
    private static let lock = Mutex(())

    /// The descriptor written to.
    public let fd: Int32

    /// Creates an output for `fd` (not owned: never closed).
    public init(fd: Int32) { self.fd = fd }

    public func writeLine(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        Self.lock.withLock { _ in
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        return  // EPIPE, EBADF, EAGAIN…: nothing sensible left to do with a log line.
                    }
                }
            }
        }
    }
}

/// Chooses and installs the process's log handler.
public enum LoggingSetup {
    private static let bootstrapped = Mutex(false)

    /// Resolves `.auto` to a concrete format; other formats are returned unchanged.
    ///
    /// `.auto` becomes `.journal` only if `JOURNAL_STREAM` (`"<st_dev>:<st_ino>"`, decimal) matches
    /// `fstat(stderrFD)`, meaning stderr is the journal stream systemd connected us to. A set but
    /// mismatching variable (inherited by a child whose stderr was redirected) gives `.text`, as
    /// systemd.exec(5) recommends.
    public static func resolve(_ format: LogFormat, environment: [String: String], stderrFD: Int32 = 2) -> LogFormat {
        guard format == .auto else { return format }
        return stderrIsJournalStream(environment: environment, stderrFD: stderrFD) ? .journal : .text
    }

    /// Whether `JOURNAL_STREAM` names the device and inode of `stderrFD`.
    public static func stderrIsJournalStream(environment: [String: String], stderrFD: Int32 = 2) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(stderrFD, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    /// Installs kvwarm's handler for every logger with `LoggingSystem.bootstrap`.
    ///
    /// Safe to call more than once: only the first call bootstraps (swift-log forbids a second
    /// bootstrap); later calls do nothing and return `false`.
    /// - Parameters:
    ///   - format: the requested format; `.auto` is resolved with ``resolve(_:environment:stderrFD:)``.
    ///   - level: the minimum level for every logger.
    ///   - environment: the process environment (for `JOURNAL_STREAM`).
    ///   - metadataProvider: optional contextual metadata for every logger.
    /// - Returns: whether this call installed the handler.
    @discardableResult
    public static func bootstrap(
        format: LogFormat, level: Logger.Level, environment: [String: String],
        metadataProvider: Logger.MetadataProvider? = nil
    ) -> Bool {
        let resolved = resolve(format, environment: environment)
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return false }
        LoggingSystem.bootstrap(
            { label, provider in makeHandler(label: label, format: resolved, level: level, metadataProvider: provider) },
            metadataProvider: metadataProvider
        )
        return true
    }

    /// Builds a handler without touching the global logging system (usable from tests).
    /// - Parameters:
    ///   - label: the logger label.
    ///   - format: `.auto` is resolved against `environment` and the real stderr.
    ///   - level: the minimum level.
    ///   - output: where text and JSON lines go, and the journal handler's fallback.
    ///   - journalSink: where journal records go.
    ///   - environment: used only to resolve `.auto`.
    ///   - metadataProvider: optional contextual metadata.
    public static func makeHandler(
        label: String,
        format: LogFormat,
        level: Logger.Level,
        output: any LogOutput = StandardErrorOutput.shared,
        journalSink: any JournalSink = SystemdJournalSink(),
        environment: [String: String] = [:],
        metadataProvider: Logger.MetadataProvider? = nil
    ) -> any LogHandler {
        switch resolve(format, environment: environment) {
        case .journal:
            JournalLogHandler(
                label: label, level: level, sink: journalSink, fallback: output, metadataProvider: metadataProvider)
        case .json:
            JSONLogHandler(label: label, level: level, output: output, metadataProvider: metadataProvider)
        case .text, .auto:
            TextLogHandler(label: label, level: level, output: output, metadataProvider: metadataProvider)
        }
    }
}
