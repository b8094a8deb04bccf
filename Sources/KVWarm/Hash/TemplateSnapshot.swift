
/// A template and every file it includes, read at one moment, with a digest of all inputs.
///
/// The digest is SHA-256 over the template bytes, each include (its reference
/// and bytes), the endpoint and the role, each length-prefixed, so any change
/// that would change the warm prompt changes the digest.
public struct TemplateSnapshot: Sendable, Equatable {
    /// One `<{path}>` include as written and as read.
    public struct Include: Sendable, Equatable {
        /// The reference as written between `<{` and `}>`.
        public var reference: String
        /// The absolute path it resolved to (before following symlinks).
        public var path: String
        public var content: String
    }

    public var spec: TemplateSpec
    /// The template text; for a request template, its body with includes expanded.
    public var text: String
    public var includes: [Include]
    /// The parsed request body of a request template (`.json`); nil for a text template.
    public var request: RequestTemplate?
    /// Lowercase hex SHA-256 of the inputs.
    public var digest: String

    public init(spec: TemplateSpec, text: String, includes: [Include], request: RequestTemplate? = nil) {
        self.spec = spec
        self.text = text
        self.includes = includes
        self.request = request
        self.digest = Self.digest(spec: spec, text: text, includes: includes)
    }

    static func digest(spec: TemplateSpec, text: String, includes: [Include]) -> String {
        var h = SHA256()
        func field(_ s: String) {
            let b = Array(s.utf8)
            withUnsafeBytes(of: UInt64(b.count).littleEndian) { h.update(bufferPointer: $0) }
            h.update(data: b)
        }
        field("kvwarm-template-digest-v1")
        field(spec.endpoint.rawValue)
        field(spec.role.rawValue)
        field(text)
        for inc in includes {
            field(inc.reference)
            field(inc.content)
        }
        return HexEncoding.lowercase(h.finalize())
    }

    /// The template file plus every include path: what the watcher must watch.
    public var dependencyPaths: Set<String> {
        Set([spec.path] + includes.map(\.path))
    }
}

/// Why a template could not be loaded. Each fails that template alone.
public enum TemplateProblem: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(path: String)
    case unreadable(path: String, reason: String)
    case notRegularFile(path: String)
    case tooLarge(path: String, bytes: Int, limit: Int)
    case notUTF8(path: String)
    case empty(path: String)
    case includeOutsideRoots(reference: String, resolved: String)
    case includeMissing(reference: String, path: String)
    case includeUnreadable(reference: String, reason: String)
    /// A request template (`.json`) that is not a usable chat-completions body.
    case requestInvalid(path: String, problem: RequestTemplate.Problem)

    public var description: String {
        switch self {
        case .missing(let p): "template file \(p) does not exist"
        case .unreadable(let p, let r): "cannot read \(p): \(r)"
        case .notRegularFile(let p): "\(p) is not a regular file"
        case .tooLarge(let p, let b, let l): "\(p) is \(b) bytes, over max_template_bytes (\(l))"
        case .notUTF8(let p): "\(p) is not valid UTF-8 text"
        case .empty(let p): "\(p) is empty"
        case .includeOutsideRoots(let r, let p): "include <{\(r)}> resolves to \(p), outside include_roots"
        case .includeMissing(let r, let p): "include <{\(r)}>: \(p) does not exist"
        case .includeUnreadable(let r, let why): "include <{\(r)}>: \(why)"
        case .requestInvalid(let p, let problem):
            "\(p):\(problem.line): \(problem.key.isEmpty ? "" : problem.key + ": ")\(problem.message)"
        }
    }

    /// A short machine-readable cause for the `REASON` log field.
    public var reason: String {
        switch self {
        case .missing: "missing"
        case .unreadable: "unreadable"
        case .notRegularFile: "not_a_file"
        case .tooLarge: "too_large"
        case .notUTF8: "not_utf8"
        case .empty: "empty"
        case .includeOutsideRoots: "include_outside_roots"
        case .includeMissing: "include_missing"
        case .includeUnreadable: "include_unreadable"
        case .requestInvalid: "request_invalid"
        }
    }
}
