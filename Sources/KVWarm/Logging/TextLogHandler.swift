import Glibc
import Logging

/// A swift-log handler that writes one line per record for a person at a terminal.
///
/// Layout: `HH:MM:SS.mmm LEVEL TEMPLATE: message (hint: …)`
/// - the time is local wall-clock time with milliseconds; the level is padded to 6 columns
///   (`INFO  `, `NOTICE`, `WARN  `, `ERROR `, `CRIT  `, `DEBUG `, `TRACE `);
/// - `TEMPLATE: ` is present only when the record names a template;
/// - the message follows, with newlines and other control characters escaped (`\n`), so every
///   record is exactly one line; then `HINT` as `(hint: …)` and an attached error as `(error: …)`.
///
/// At `debug` or `trace` level every other field follows as `KEY=value` (journal names, sorted;
/// values that are empty or contain spaces, quotes, `=`, `\` or control characters quoted and
/// escaped), so a debug run shows what the journal and JSON formats always carry. `MESSAGE_ID`
/// is never printed.
public struct TextLogHandler: LogHandler {
    /// The logger label (not printed).
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: any LogOutput
    private let clock: @Sendable () -> String

    /// Creates a handler writing to `output` (standard error by default).
    /// - Parameter clock: produces the line's time; tests inject a fixed one.
    public init(
        label: String,
        level: Logger.Level = .info,
        output: any LogOutput = StandardErrorOutput.shared,
        metadataProvider: Logger.MetadataProvider? = nil,
        clock: @escaping @Sendable () -> String = TextLogHandler.localTime
    ) {
        self.label = label
        self.logLevel = level
        self.output = output
        self.metadataProvider = metadataProvider
        self.clock = clock
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let record = LogRecord(event: event, handlerMetadata: metadata, provider: metadataProvider)
        output.writeLine(Self.format(record, time: clock(), allFields: logLevel <= .debug))
    }

    /// The current local time as `HH:MM:SS.mmm`.
    @Sendable public static func localTime() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(ts.tv_nsec) / 1_000_000
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(msText)"
    }

    /// The level as printed: at most 6 characters, padded.
    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "TRACE "
        case .debug: "DEBUG "
        case .info: "INFO  "
        case .notice: "NOTICE"
        case .warning: "WARN  "
        case .error: "ERROR "
        case .critical: "CRIT  "
        }
    }

    /// Formats one record as a line (without the trailing newline).
    /// - Parameter allFields: also print every field other than the template, hint and error.
    static func format(_ record: LogRecord, time: String, allFields: Bool) -> String {
        var template: String?
        var hint: String?
        var error: String?
        var rest: [String] = []
        for (name, value) in record.metadata {
            switch name {
            case LogField.template: template = value
            case LogField.hint: hint = value
            case LogField.error: error = value
            case LogField.messageID: continue
            default: if allFields { rest.append("\(name)=\(quoted(value))") }
            }
        }
        var line = "\(time) \(levelName(record.level)) "
        if let template { line += escaped(template) + ": " }
        line += escaped(record.message)
        if let hint { line += " (hint: \(escaped(hint)))" }
        if let error { line += " (error: \(escaped(error)))" }
        if !rest.isEmpty { line += " " + rest.joined(separator: " ") }
        return line
    }

    /// Escapes control characters so the text stays on one line.
    static func escaped(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return s }
        var out = String.UnicodeScalarView()
        for scalar in s.unicodeScalars { appendEscaped(scalar, to: &out, quoteAndBackslash: false) }
        return String(out)
    }

    /// Returns `s` as is when it is a plain token, otherwise quoted and escaped.
    static func quoted(_ s: String) -> String {
        let plain = !s.isEmpty && !s.unicodeScalars.contains {
            $0.value <= 0x20 || $0.value == 0x7F || $0 == "\"" || $0 == "=" || $0 == "\\"
        }
        if plain { return s }
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in s.unicodeScalars { appendEscaped(scalar, to: &out, quoteAndBackslash: true) }
        out.append("\"")
        return String(out)
    }

    private static func appendEscaped(
        _ scalar: Unicode.Scalar, to out: inout String.UnicodeScalarView, quoteAndBackslash: Bool
    ) {
        switch scalar {
        case "\n": out.append(contentsOf: #"\n"#.unicodeScalars)
        case "\r": out.append(contentsOf: #"\r"#.unicodeScalars)
        case "\t": out.append(contentsOf: #"\t"#.unicodeScalars)
        case "\"" where quoteAndBackslash: out.append(contentsOf: #"\""#.unicodeScalars)
        case "\\" where quoteAndBackslash: out.append(contentsOf: #"\\"#.unicodeScalars)
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                let hex = String(scalar.value, radix: 16)
                out.append(contentsOf: ("\\x" + (hex.count < 2 ? "0" + hex : hex)).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
    }
}
