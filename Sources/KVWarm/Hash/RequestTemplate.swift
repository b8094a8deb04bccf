/// A request template: an OpenAI chat-completions body (a `.json` template file) whose last
/// user message holds `<{message}>` where the user's turn goes.
///
/// The body is never decoded and re-encoded as a whole: llama-server keeps JSON object keys in
/// the order it receives them and its chat template prints tool schemas in that order, so the
/// bytes sent to `/apply-template` are the file's own. Only string values that contain `<{…}>`
/// are rewritten: their includes expanded, the result encoded as a JSON string again.
public struct RequestTemplate: Sendable, Equatable {
    /// The body with includes expanded and `<{message}>` left in place (exactly once).
    public var body: String
    /// How many messages precede and include the user's turn.
    public var messageCount: Int
    /// How many entries `tools` has (0 when absent).
    public var toolCount: Int
    /// The top-level fields in file order.
    public var fields: [String]

    /// The placeholder for the user's turn.
    public static let placeholder = "<{message}>"

    /// Top-level fields llama-server's chat-template rendering reads (tools/server/server-common.cpp,
    /// `oaicompat_chat_params_parse`); the others shape sampling or the response only.
    public static let renderingFields: Set<String> = [
        "messages", "tools", "chat_template_kwargs", "add_generation_prompt", "continue_final_message",
        "reasoning_effort", "enable_thinking",
    ]

    /// Why a request template cannot be used; `line` is the line in the template file.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        /// Where in the body, as `messages[2].content`; empty for the whole document.
        public var key: String
        public var message: String

        public var description: String {
            key.isEmpty ? "line \(line): \(message)" : "line \(line): \(key): \(message)"
        }
    }

    /// A parsed body, before its includes are read.
    public struct Parsed: Sendable {
        let bytes: [UInt8]
        /// String values containing `<{`, in file order, with their key paths.
        let marked: [(key: String, node: JSONNode, text: String)]
        public let messageCount: Int
        public let toolCount: Int
        public let fields: [String]

        /// The include references in string values, in order of first appearance.
        public var includeReferences: [String] {
            var seen: Set<String> = []
            var out: [String] = []
            for m in marked {
                for r in SnapshotLoader.includeReferences(in: m.text) where seen.insert(r).inserted { out.append(r) }
            }
            return out
        }

        /// The body with each include reference replaced by `includes[reference]`.
        /// References the loader did not resolve (empty or multi-line) stay literal.
        public func expanded(includes: [String: String]) -> RequestTemplate {
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var at = 0
            for m in marked {
                out.append(contentsOf: bytes[at..<m.node.span.lowerBound])
                out.append(contentsOf: Self.encode(Self.expand(m.text, includes)).utf8)
                at = m.node.span.upperBound
            }
            out.append(contentsOf: bytes[at...])
            return RequestTemplate(body: String(decoding: out, as: UTF8.self), messageCount: messageCount,
                                   toolCount: toolCount, fields: fields)
        }

        /// `text` with includes substituted. An include's own `<` is written as `\u003c` later, so
        /// no included text can pose as the placeholder.
        static func expand(_ text: String, _ includes: [String: String]) -> [Piece] {
            var pieces: [Piece] = []
            var rest = text.startIndex
            for token in PlaceholderScanner.tokens(in: text) {
                pieces.append(.literal(String(text[rest..<token.whole.lowerBound])))
                let ref = String(text[token.inner])
                if ref != "message", let content = includes[ref] {
                    pieces.append(.included(content))
                } else {
                    pieces.append(.literal(String(text[token.whole])))
                }
                rest = token.whole.upperBound
            }
            pieces.append(.literal(String(text[rest...])))
            return pieces
        }

        enum Piece { case literal(String), included(String) }

        /// The pieces as one JSON string literal.
        static func encode(_ pieces: [Piece]) -> String {
            var s = "\""
            for p in pieces {
                switch p {
                case .literal(let t): JSONText.appendEscaped(t, to: &s)
                case .included(let t): JSONText.appendEscaped(t, to: &s, escapeLessThan: true)
                }
            }
            return s + "\""
        }
    }

    /// The body with the user's turn set to `message` (JSON-escaped into the string it sits in).
    public func body(message: String) -> String {
        var escaped = ""
        JSONText.appendEscaped(message, to: &escaped)
        guard let r = body.firstRange(of: Self.placeholder) else { return body }
        var out = body
        out.replaceSubrange(r, with: escaped)
        return out
    }

    /// Parses and checks a body: a JSON object whose `messages` is a non-empty array of messages
    /// with roles, the last one a user message holding the only `<{message}>` in its text content;
    /// text content only (a media part would send the request down llama-server's multimodal path,
    /// whose prompt `/apply-template` does not show).
    public static func parse(_ text: String) throws(Problem) -> Parsed {
        let bytes = Array(text.utf8)
        let root: JSONNode
        do {
            root = try JSONDocumentParser.parse(bytes)
        } catch {
            throw Problem(line: error.line, key: "", message: "\(error.message) (column \(error.column))")
        }
        guard case .object(let members) = root.value else {
            throw Problem(line: root.line, key: "", message: "expected a chat-completions request object, got \(root.value.typeName)")
        }
        var marked: [(key: String, node: JSONNode, text: String)] = []
        collect(root, key: "", into: &marked)
        let placeholders = marked.flatMap { m in
            PlaceholderScanner.tokens(in: m.text).filter { m.text[$0.inner] == "message" }.map { _ in m }
        }
        guard let messagesNode = members.first(where: { $0.key == "messages" })?.value else {
            throw Problem(line: root.line, key: "messages", message: "missing; a request template needs the messages before the user's turn")
        }
        guard case .array(let messages) = messagesNode.value, !messages.isEmpty else {
            throw Problem(line: messagesNode.line, key: "messages", message: "expected a non-empty array of messages")
        }
        for (i, m) in messages.enumerated() {
            guard case .object(let fields) = m.value else {
                throw Problem(line: m.line, key: "messages[\(i)]", message: "expected a message object, got \(m.value.typeName)")
            }
            guard let role = fields.first(where: { $0.key == "role" })?.value, case .string = role.value else {
                throw Problem(line: m.line, key: "messages[\(i)].role", message: "missing or not a string")
            }
            if let content = fields.first(where: { $0.key == "content" })?.value, case .array(let parts) = content.value {
                for (j, part) in parts.enumerated() {
                    guard case .object(let pf) = part.value,
                          let type = pf.first(where: { $0.key == "type" })?.value, case .string(let t) = type.value else {
                        throw Problem(line: part.line, key: "messages[\(i)].content[\(j)]", message: "expected a content part with a \"type\"")
                    }
                    guard t == "text" else {
                        throw Problem(line: part.line, key: "messages[\(i)].content[\(j)].type",
                                      message: "\"\(t)\" parts cannot be warmed: kvwarm warms text content only (llama-server renders media through its multimodal path)")
                    }
                }
            }
        }
        let userTurn = "messages[\(messages.count - 1)]"
        guard case .object(let last) = messages[messages.count - 1].value,
              case .string("user") = last.first(where: { $0.key == "role" })?.value.value else {
            throw Problem(line: messages[messages.count - 1].line, key: "\(userTurn).role",
                          message: "the last message must be the user's turn (role \"user\") holding <{message}>")
        }
        guard let first = placeholders.first else {
            throw Problem(line: messages[messages.count - 1].line, key: "\(userTurn).content",
                          message: "no <{message}>: put it where the user's text goes in the last user message")
        }
        guard placeholders.count == 1 else {
            throw Problem(line: placeholders[1].node.line, key: placeholders[1].key,
                          message: "a second <{message}> (the first is in \(first.key) on line \(first.node.line)); a request has one user turn")
        }
        guard first.key == "\(userTurn).content" || (first.key.hasPrefix("\(userTurn).content[") && first.key.hasSuffix("].text")) else {
            throw Problem(line: first.node.line, key: first.key,
                          message: "<{message}> must be in the content of the last message (\(userTurn)), the user's turn")
        }
        var toolCount = 0
        if let tools = members.first(where: { $0.key == "tools" })?.value {
            guard case .array(let list) = tools.value else {
                throw Problem(line: tools.line, key: "tools", message: "expected an array of tool schemas, got \(tools.value.typeName)")
            }
            toolCount = list.count
        }
        if let kwargs = members.first(where: { $0.key == "chat_template_kwargs" })?.value {
            guard case .object = kwargs.value else {
                throw Problem(line: kwargs.line, key: "chat_template_kwargs", message: "expected an object, got \(kwargs.value.typeName)")
            }
        }
        return Parsed(bytes: bytes, marked: marked, messageCount: messages.count, toolCount: toolCount,
                      fields: members.map(\.key))
    }

    /// Every string value under `node` that contains `<{`, with its key path.
    private static func collect(_ node: JSONNode, key: String, into out: inout [(key: String, node: JSONNode, text: String)]) {
        switch node.value {
        case .string(let s) where s.contains("<{"): out.append((key, node, s))
        case .array(let items):
            for (i, item) in items.enumerated() { collect(item, key: "\(key)[\(i)]", into: &out) }
        case .object(let members):
            for m in members { collect(m.value, key: key.isEmpty ? m.key : "\(key).\(m.key)", into: &out) }
        default: break
        }
    }
}
