/// Path normalisation that never touches the file system.
///
/// `NSString.standardizingPath` follows symlinks on Linux; kvwarm must keep
/// the path as configured (a symlink is watched as a symlink, so re-pointing
/// it is seen), so `.`/`..`/`//` are folded textually instead.
///
/// The one `..` rule of kvwarm: `a/b/..` is `a`, whatever `b` is. The config loader and the
/// snapshot loader fold configured and include paths this way before anything opens them, so
/// the daemon reads the folded path; the watcher must watch exactly the paths the daemon reads,
/// so it folds the same way. Where the kernel's physical `..` matters (a symlink target
/// containing `..`), the watcher joins the target to the real path of the link's directory
/// before folding, and it also watches the fully resolved `realpath` of every file.
public enum LexicalPath {
    /// `path` with empty, `.` and `..` components folded; absolute paths stay absolute.
    /// `..` at the root of an absolute path is dropped; at the start of a relative one it is kept.
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

    /// `(dirname, basename)` of the normalised absolute `path`; the root's parent is itself and
    /// its name is empty.
    static func split(_ path: String) -> (String, String) {
        let p = normalize(path)
        guard let slash = p.lastIndex(of: "/"), p != "/" else { return ("/", "") }
        let dir = String(p[..<slash])
        return (dir.isEmpty ? "/" : dir, String(p[p.index(after: slash)...]))
    }

    /// `path` without its last component, textually: trailing slashes are dropped first, the
    /// parent of `/x` is `/`, and a path without a slash has the parent `""`.
    public static func parent(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        if slash == p.startIndex { return "/" }
        var d = p[..<slash]
        while d.count > 1, d.hasSuffix("/") { d.removeLast() }
        return String(d)
    }

    /// `target` made absolute against `directory` (unless it already is), normalised.
    static func absolute(_ target: String, relativeTo directory: String) -> String {
        normalize(target.hasPrefix("/") ? target : directory + "/" + target)
    }
}
