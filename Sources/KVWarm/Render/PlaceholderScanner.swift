/// Finds the `<{…}>` tokens of a template text: includes and `<{message}>`.
///
/// Both delimiters are ASCII, so the scan runs over UTF-8 bytes and never
/// matches inside a multi-byte character. A token runs from a `<{` to the
/// first `}>` after it; scanning resumes after that `}>`. An unclosed `<{`
/// ends the scan. ``SnapshotLoader`` (which includes to read) and
/// ``TemplateRenderer`` (what to substitute) share it, so they always agree.
enum PlaceholderScanner {
    struct Token {
        /// From `<{` to `}>`, both included.
        var whole: Range<String.Index>
        /// Between the delimiters.
        var inner: Range<String.Index>
    }

    static func tokens(in text: String) -> [Token] {
        let utf8 = text.utf8
        var tokens: [Token] = []
        var i = utf8.startIndex
        let open0 = UInt8(ascii: "<"), open1 = UInt8(ascii: "{")
        let close0 = UInt8(ascii: "}"), close1 = UInt8(ascii: ">")
        /// The index of the first `a` directly followed by `b` at or after `from`.
        func find(_ a: UInt8, _ b: UInt8, from: String.Index) -> String.Index? {
            var j = from
            while j < utf8.endIndex {
                if utf8[j] == a {
                    let k = utf8.index(after: j)
                    if k < utf8.endIndex, utf8[k] == b { return j }
                }
                j = utf8.index(after: j)
            }
            return nil
        }
        while let open = find(open0, open1, from: i) {
            let innerStart = utf8.index(open, offsetBy: 2)
            guard let close = find(close0, close1, from: innerStart) else { break }
            let end = utf8.index(close, offsetBy: 2)
            tokens.append(Token(whole: open..<end, inner: innerStart..<close))
            i = end
        }
        return tokens
    }
}
