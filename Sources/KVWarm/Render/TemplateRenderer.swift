/// A template with its includes expanded, split where the user's message goes.
public struct RenderedTemplate: Sendable, Equatable {
    /// Text before the first `<{message}>` (the whole text when there is none).
    public var beforeMessage: String
    /// Text after it (later `<{message}>` occurrences become "").
    public var afterMessage: String
    /// Whether the template had a `<{message}>` placeholder.
    public var hasPlaceholder: Bool

    /// The full text with the message left empty, as bioproxy renders it.
    public var withEmptyMessage: String { beforeMessage + afterMessage }
}

/// The render stage: a pure function of a ``TemplateSnapshot``.
///
/// `<{path}>` becomes that include's content (not recursive: the included
/// text is not scanned again) and the text is split at the first
/// `<{message}>`. A template without the placeholder is treated as if it
/// ended with one.
public enum TemplateRenderer {
    public static func render(_ snapshot: TemplateSnapshot) -> RenderedTemplate {
        let contents = Dictionary(snapshot.includes.map { ($0.reference, $0.content) }, uniquingKeysWith: { a, _ in a })
        var before = ""
        var after = ""
        var seenMessage = false
        var rest = Substring(snapshot.text)
        func emit(_ s: some StringProtocol) {
            if seenMessage { after += s } else { before += s }
        }
        while let open = rest.range(of: "<{") {
            emit(rest[..<open.lowerBound])
            let tail = rest[open.upperBound...]
            guard let close = tail.range(of: "}>") else {
                emit(rest[open.lowerBound...])
                rest = rest[rest.endIndex...]
                break
            }
            let ref = String(tail[..<close.lowerBound])
            if ref == "message" {
                seenMessage = true
            } else if let c = contents[ref] {
                emit(c)
            } else {
                // not an include the loader resolved (empty or multi-line): literal text
                emit(rest[open.lowerBound..<close.upperBound])
            }
            rest = tail[close.upperBound...]
        }
        emit(rest)
        return RenderedTemplate(beforeMessage: before, afterMessage: after, hasPlaceholder: seenMessage)
    }
}
