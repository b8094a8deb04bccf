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
        let text = snapshot.text
        var rest = text.startIndex
        func emit(_ s: some StringProtocol) {
            if seenMessage { after += s } else { before += s }
        }
        for token in PlaceholderScanner.tokens(in: text) {
            emit(text[rest..<token.whole.lowerBound])
            let ref = String(text[token.inner])
            if ref == "message" {
                seenMessage = true
            } else if let c = contents[ref] {
                emit(c)
            } else {
                // not an include the loader resolved (empty or multi-line): literal text
                emit(text[token.whole])
            }
            rest = token.whole.upperBound
        }
        emit(text[rest...])
        return RenderedTemplate(beforeMessage: before, afterMessage: after, hasPlaceholder: seenMessage)
    }
}
