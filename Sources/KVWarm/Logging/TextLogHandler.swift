import Logging

/// A swift-log handler that writes one readable line per record, for terminals and plain stderr.
///
/// Layout: `LEVEL STAGE TEMPLATE message KEY=value ...`
/// - `LEVEL` is upper case (`INFO`, `WARNING`); `STAGE` and `TEMPLATE` come from metadata and are
///   `-` when absent;
/// - the message follows, with newlines and other control characters escaped (`\n`), so every
///   record is exactly one line;
/// - the remaining metadata follows as `KEY=value`, keys named as in the journal, sorted; a value that
///   is empty or contains spaces, quotes, `=`, `\` or control characters is written as a quoted,
///   escaped string (`REASON="file not found"`). `MESSAGE_ID` is left out to keep lines short; the
///   journal and JSON formats carry it.
public struct TextLogHandler: LogHandler {
    /// The logger label (not printed).
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: any LogOutput

    /// Creates a handler writing to `output` (standard error by default).
    public init(
        label: String,
        level: Logger.Level = .info,
        output: any LogOutput = StandardErrorOutput.shared,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.logLevel = level
        self.output = output
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let record = LogRecord(event: event, handlerMetadata: metadata, provider: metadataProvider)
        output.writeLine(Self.format(record))
    }

    /// Formats one record as a line (without the trailing newline).
    static func format(_ record: LogRecord) -> String {
        var stage = "-"
        var template = "-"
        var rest: [String] = []
        for (name, value) in record.metadata {
            switch name {
            case LogField.stage: stage = quoted(value)
            case LogField.template: template = quoted(value)
            case LogField.messageID: continue
            default: rest.append("\(name)=\(quoted(value))")
            }
        }
        var line = "\(record.level.displayName) \(stage) \(template) \(escaped(record.message))"
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
