#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// A swift-log handler that writes one JSON object per line.
///
/// The object holds the same fields as a journal record (`MESSAGE`, `PRIORITY`,
/// `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC` and the metadata, named by
/// ``JournalFields``' rules) plus `LEVEL` (`INFO`…) and `TIMESTAMP` (RFC 3339 UTC with microseconds,
/// `2025-01-31T12:00:00.123456Z`). Every value is a JSON string, as in `journalctl -o json`;
/// keys are sorted, so output is deterministic.
public struct JSONLogHandler: LogHandler {
    /// The logger label (not printed).
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: any LogOutput
    private let timestamp: @Sendable () -> String

    /// Creates a handler.
    /// - Parameters:
    ///   - output: where lines go (standard error by default).
    ///   - timestamp: produces the `TIMESTAMP` value; tests inject a fixed one.
    public init(
        label: String,
        level: Logger.Level = .info,
        output: any LogOutput = StandardErrorOutput.shared,
        metadataProvider: Logger.MetadataProvider? = nil,
        timestamp: @escaping @Sendable () -> String = JSONLogHandler.currentTimestamp
    ) {
        self.label = label
        self.logLevel = level
        self.output = output
        self.metadataProvider = metadataProvider
        self.timestamp = timestamp
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let record = LogRecord(event: event, handlerMetadata: metadata, provider: metadataProvider)
        var fields = record.journalFields
        fields.append(("LEVEL", record.level.displayName))
        fields.append(("TIMESTAMP", timestamp()))
        fields.sort { $0.0 < $1.0 }
        var line = "{"
        for (i, (name, value)) in fields.enumerated() {
            if i > 0 { line += "," }
            JSONText.appendString(name, to: &line)
            line += ":"
            JSONText.appendString(value, to: &line)
        }
        line += "}"
        output.writeLine(line)
    }

    /// The current wall-clock time as RFC 3339 UTC with microseconds.
    public static let currentTimestamp: @Sendable () -> String = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: Int(ts.tv_sec), nanoseconds: Int(ts.tv_nsec))
    }

    /// Formats a UNIX time as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
    public static func format(seconds: Int, nanoseconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return "\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))"
            + "T\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2))"
            + ".\(pad(nanoseconds / 1000, 6))Z"
    }
}

/// Minimal JSON text encoding for log output (strings and metadata values).
enum JSONText {
    /// Encodes a metadata value: strings as JSON strings, arrays and dictionaries (keys sorted) as such.
    static func encode(_ value: Logger.Metadata.Value) -> String {
        var out = ""
        append(value, to: &out)
        return out
    }

    static func append(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let s): appendString(s, to: &out)
        case .stringConvertible(let c): appendString(c.description, to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                append(v, to: &out)
            }
            out += "]"
        case .dictionary(let d):
            out += "{"
            for (i, k) in d.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                appendString(k, to: &out)
                out += ":"
                append(d[k]!, to: &out)
            }
            out += "}"
        }
    }

    /// Appends `s` as a JSON string literal (RFC 8259 escaping).
    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        appendEscaped(s, to: &out)
        out += "\""
    }

    /// Appends `s` JSON-escaped, without the quotes; `escapeLessThan` also writes `<` as `\u003c`.
    static func appendEscaped(_ s: String, to out: inout String, escapeLessThan: Bool = false) {
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<" where escapeLessThan: out += "\\u003c"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
    }
}
