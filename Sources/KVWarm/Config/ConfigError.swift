/// A configuration problem: which file, which key, which line, and what is wrong.
///
/// `kvwarm check` and `kvwarm run` print it and exit 78 (EX_CONFIG); on a
/// SIGHUP reload the old configuration stays in force and this is logged.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The config file.
    public var file: String
    /// The dotted key path, e.g. `templates.code.endpoint`; nil for syntax errors.
    public var key: String?
    /// The 1-based line, when known.
    public var line: Int?
    public var message: String

    public init(file: String, key: String? = nil, line: Int? = nil, message: String) {
        self.file = file
        self.key = key
        self.line = line
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + message
    }
}
