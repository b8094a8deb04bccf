extension StringProtocol {
    /// The text without leading and trailing white space and newlines (Unicode `White_Space`).
    public func trimmingWhiteSpace() -> String {
        let s = String(self)
        guard let first = s.unicodeScalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = s.unicodeScalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(Substring(s.unicodeScalars[first...last]))
    }
}
