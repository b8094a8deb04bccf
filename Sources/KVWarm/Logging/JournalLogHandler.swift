import Logging

// MARK: - Field names and metadata flattening (shared by the journal, text and JSON handlers)

/// Turns swift-log metadata into journal fields.
///
/// Rules, applied to every metadata key:
/// - upper-cased; every character outside `[A-Z0-9_]` becomes `_` (so `db.table` → `DB_TABLE`);
/// - a name that is empty, or starts with `_` or a digit, gets the prefix `F_` (a leading `_` marks
///   journald's trusted fields, and journald ignores such assignments from clients);
/// - a name that collides with a field the handlers set themselves (`MESSAGE`, `PRIORITY`,
///   `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`, `LEVEL`, `TIMESTAMP`) also gets `F_`;
/// - names are cut to journald's limit of 64 characters.
///
/// Values: `.string` and `.stringConvertible` are their text; a `.dictionary` is flattened into one
/// field per entry named `KEY_SUBKEY` (recursively); an `.array` becomes one field holding compact
/// JSON text (`["a",{"b":"c"}]`), because journal fields cannot express order reliably.
/// If two keys map to the same name, the one that sorts last (by original key) wins.
public enum JournalFields {
    /// Fields every handler writes itself; metadata with these names is prefixed with `F_`.
    public static let reserved: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LEVEL", "TIMESTAMP",
    ]

    /// The `SYSLOG_IDENTIFIER` every kvwarm record carries.
    public static let syslogIdentifier = "kvwarm"

    /// Longest field name journald accepts.
    public static let maxNameLength = 64

    /// Converts an arbitrary metadata key into a valid journal field name (see the type's rules).
    public static func sanitize(_ key: String) -> String {
        var out = mapCharacters(key)
        if out.isEmpty || out.hasPrefix("_") || out.first!.isNumber || reserved.contains(out) {
            out = "F_" + out
        }
        return truncated(out)
    }

    /// Upper-cases `key` and replaces everything outside `[A-Z0-9_]` with `_`.
    static func mapCharacters(_ key: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in key.unicodeScalars {
            switch scalar {
            case "A"..."Z", "0"..."9", "_": out.append(scalar)
            case "a"..."z": out.append(Unicode.Scalar(scalar.value - 32)!)
            default: out.append("_")
            }
        }
        return String(out)
    }

    private static func truncated(_ name: String) -> String {
        name.utf8.count > maxNameLength ? String(name.prefix(maxNameLength)) : name
    }

    /// Merges metadata in increasing precedence: handler (logger) metadata, then the metadata
    /// provider's, then the per-call metadata. Later sources win on equal keys.
    public static func merge(
        handler: Logger.Metadata, provider: Logger.MetadataProvider?, call: Logger.Metadata?
    ) -> Logger.Metadata {
        var merged = handler
        if let provided = provider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let call, !call.isEmpty {
            merged.merge(call) { _, new in new }
        }
        return merged
    }

    /// Flattens metadata into `(FIELD_NAME, text)` pairs sorted by field name.
    public static func flatten(_ metadata: Logger.Metadata) -> [(String, String)] {
        var fields: [String: String] = [:]
        for key in metadata.keys.sorted() {
            flatten(name: sanitize(key), value: metadata[key]!, into: &fields)
        }
        return fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    private static func flatten(name: String, value: Logger.Metadata.Value, into fields: inout [String: String]) {
        switch value {
        case .string(let s): fields[name] = s
        case .stringConvertible(let c): fields[name] = c.description
        case .array: fields[name] = JSONText.encode(value)
        case .dictionary(let d):
            if d.isEmpty { fields[name] = "{}"; return }
            for key in d.keys.sorted() {
                // The parent name is already valid, so a sub-key only needs its characters mapped.
                var joined = name + "_" + mapCharacters(key)
                if reserved.contains(joined) { joined = "F_" + joined }
                joined = truncated(joined)
                flatten(name: joined, value: d[key]!, into: &fields)
            }
        }
    }
}

extension Logger.Level {
    /// The syslog/journald `PRIORITY` for this level: trace/debug → 7, info → 6, notice → 5,
    /// warning → 4, error → 3, critical → 2.
    public var journalPriority: Int {
        switch self {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Upper-case level name used in text and JSON output (`INFO`, `WARNING`, …).
    public var displayName: String { rawValue.uppercased() }
}

/// One record with everything the handlers print, in a fixed order.
struct LogRecord {
    var level: Logger.Level
    var message: String
    var file: String
    var function: String
    var line: UInt
    /// Flattened, sanitised metadata, sorted by name.
    var metadata: [(String, String)]

    init(event: LogEvent, handlerMetadata: Logger.Metadata, provider: Logger.MetadataProvider?) {
        level = event.level
        message = event.message.description
        file = event.file
        function = event.function
        line = event.line
        var merged = JournalFields.merge(handler: handlerMetadata, provider: provider, call: event.metadata)
        if let error = event.error, merged[LogField.error] == nil {
            merged[LogField.error] = .string(String(describing: error))
        }
        metadata = JournalFields.flatten(merged)
    }

    /// The journal fields: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE, CODE_LINE, CODE_FUNC,
    /// then the metadata.
    var journalFields: [(String, String)] {
        [
            ("MESSAGE", message),
            ("PRIORITY", String(level.journalPriority)),
            ("SYSLOG_IDENTIFIER", JournalFields.syslogIdentifier),
            ("CODE_FILE", file),
            ("CODE_LINE", String(line)),
            ("CODE_FUNC", function),
        ] + metadata
    }
}

// MARK: - Journal handler

/// A swift-log handler that writes native journald records.
///
/// Every record carries `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER=kvwarm`, `CODE_FILE`, `CODE_LINE`,
/// `CODE_FUNC` and one field per metadata entry (named by ``JournalFields``' rules). The handler is a
/// value type: copies have independent level and metadata, as swift-log requires.
///
/// If the sink reports a failure (a negative errno), the record is written as a text line to
/// `fallback` instead, so it is not lost.
public struct JournalLogHandler: LogHandler {
    /// The logger label (not sent: `SYSLOG_IDENTIFIER` is always `kvwarm`).
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let sink: any JournalSink
    private let fallback: (any LogOutput)?

    /// Creates a handler.
    /// - Parameters:
    ///   - label: the logger label.
    ///   - level: the minimum level to log.
    ///   - sink: where records go; ``SystemdJournalSink`` by default.
    ///   - fallback: where to write a text line when the sink fails; `nil` drops the record.
    ///   - metadataProvider: optional contextual metadata source.
    public init(
        label: String,
        level: Logger.Level = .info,
        sink: any JournalSink = SystemdJournalSink(),
        fallback: (any LogOutput)? = StandardErrorOutput.shared,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.logLevel = level
        self.sink = sink
        self.fallback = fallback
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let record = LogRecord(event: event, handlerMetadata: metadata, provider: metadataProvider)
        let result = sink.send(record.journalFields.map { ($0.0, Array($0.1.utf8)) })
        if result < 0, let fallback {
            fallback.writeLine(TextLogHandler.format(record, time: TextLogHandler.localTime(), allFields: true) + " journal_errno=\(-result)")
        }
    }
}
