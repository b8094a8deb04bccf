/// The JSON `null` in an ``AnyJSON`` value.
public struct JSONNull: Sendable, Equatable {
    public init() {}
}

/// JSON as untyped Swift values, for the server's answers and kvwarm's request bodies and
/// `status --json` output: objects are `[String: Any]`, arrays `[Any]`, strings `String`,
/// `true`/`false` `Bool`, `null` ``JSONNull``, numbers `Int` when written without fraction or
/// exponent and in range, `Double` otherwise.
///
/// Parsing goes through ``JSONDocumentParser`` (strict RFC 8259): a repeated key in an object
/// makes the document invalid, as does nesting deeper than 64 levels.
public enum AnyJSON {
    /// The value of the document `bytes`, or nil when they are not JSON.
    public static func parse(_ bytes: [UInt8]) -> Any? {
        guard let node = try? JSONDocumentParser.parse(bytes) else { return nil }
        return value(node, in: bytes)
    }

    /// The object the document `bytes` holds, or nil when they are not a JSON object.
    public static func object(_ bytes: [UInt8]) -> [String: Any]? {
        parse(bytes) as? [String: Any]
    }

    private static func value(_ node: JSONNode, in bytes: [UInt8]) -> Any {
        switch node.value {
        case .null: return JSONNull()
        case .bool(let b): return b
        case .string(let s): return s
        case .number(let d):
            let raw = bytes[node.span.clamped(to: 0..<bytes.count)]
            let integral = !raw.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") })
            if integral, let i = Int(exactly: d) { return i }
            return d
        case .array(let items): return items.map { value($0, in: bytes) }
        case .object(let members):
            var o: [String: Any] = [:]
            o.reserveCapacity(members.count)
            for m in members { o[m.key] = value(m.value, in: bytes) }
            return o
        }
    }

    /// `v` as an `Int`: an integer, or a `Double` with an exact integer value.
    public static func int(_ v: Any?) -> Int? {
        switch v {
        case let i as Int: i
        case let d as Double: Int(exactly: d)
        default: nil
        }
    }

    /// `v` as a `Double`: a number of either kind.
    public static func double(_ v: Any?) -> Double? {
        switch v {
        case let d as Double: d
        case let i as Int: Double(i)
        default: nil
        }
    }

    // MARK: - Writing

    /// The UTF-8 JSON text of `value`, or nil if it holds something JSON cannot carry (a type
    /// other than those above, a non-finite number). `sortedKeys` orders object members by key;
    /// `pretty` indents by two spaces and writes `"key" : value`. `/` is never escaped.
    public static func serialize(_ value: Any, sortedKeys: Bool = false, pretty: Bool = false) -> [UInt8]? {
        var w = Writer(sortedKeys: sortedKeys, pretty: pretty)
        guard w.write(value, depth: 0) else { return nil }
        return w.out
    }

    /// `s` as a JSON string literal, quotes included.
    public static func quoted(_ s: String) -> String {
        var w = Writer(sortedKeys: false, pretty: false)
        w.string(s)
        return String(decoding: w.out, as: UTF8.self)
    }

    private struct Writer {
        let sortedKeys: Bool
        let pretty: Bool
        var out: [UInt8] = []

        private static let hex = Array("0123456789abcdef".utf8)

        mutating func ascii(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }

        mutating func newline(_ depth: Int) {
            guard pretty else { return }
            out.append(0x0A)
            for _ in 0..<depth { out.append(0x20); out.append(0x20) }
        }

        mutating func string(_ s: String) {
            out.append(0x22)
            for b in s.utf8 {
                switch b {
                case 0x22: ascii("\\\"")
                case 0x5C: ascii("\\\\")
                case 0x0A: ascii("\\n")
                case 0x0D: ascii("\\r")
                case 0x09: ascii("\\t")
                case 0x08: ascii("\\b")
                case 0x0C: ascii("\\f")
                case 0..<0x20:
                    ascii("\\u00")
                    out.append(Self.hex[Int(b >> 4)])
                    out.append(Self.hex[Int(b & 0xF)])
                default: out.append(b)
                }
            }
            out.append(0x22)
        }

        mutating func write(_ value: Any, depth: Int) -> Bool {
            switch value {
            case let s as String: string(s)
            case let b as Bool: b ? ascii("true") : ascii("false")
            case let i as Int: out.append(contentsOf: String(i).utf8)
            case let d as Double:
                guard d.isFinite else { return false }
                if let i = Int(exactly: d), abs(d) < 1e15 {
                    out.append(contentsOf: String(i).utf8)
                } else {
                    out.append(contentsOf: d.description.utf8)
                }
            case is JSONNull: ascii("null")
            case let o as [String: Any]:
                if o.isEmpty { ascii("{}"); return true }
                out.append(UInt8(ascii: "{"))
                let keys = sortedKeys ? o.keys.sorted() : Array(o.keys)
                for (n, k) in keys.enumerated() {
                    if n > 0 { out.append(UInt8(ascii: ",")) }
                    newline(depth + 1)
                    string(k)
                    if pretty { ascii(" : ") } else { out.append(UInt8(ascii: ":")) }
                    guard write(o[k]!, depth: depth + 1) else { return false }
                }
                newline(depth)
                out.append(UInt8(ascii: "}"))
            case let a as [Any]:
                if a.isEmpty { ascii("[]"); return true }
                out.append(UInt8(ascii: "["))
                for (n, item) in a.enumerated() {
                    if n > 0 { out.append(UInt8(ascii: ",")) }
                    newline(depth + 1)
                    guard write(item, depth: depth + 1) else { return false }
                }
                newline(depth)
                out.append(UInt8(ascii: "]"))
            default: return false
            }
            return true
        }
    }
}
