/// Path normalisation that never touches the file system.
///
/// `NSString.standardizingPath` follows symlinks on Linux; kvwarm must keep
/// the path as configured (a symlink is watched as a symlink, so re-pointing
/// it is seen), so `.`/`..`/`//` are folded textually instead.
public enum LexicalPath {
    /// `path` with empty, `.` and `..` components folded; absolute paths stay absolute.
    public static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch c {
            case ".": continue
            case "..":
                if let last = parts.last, last != ".." { parts.removeLast() } else if !absolute { parts.append(c) }
            default: parts.append(c)
            }
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }
}
