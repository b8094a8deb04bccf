/// Which directories to watch, and which templates an event `(directory, name)` concerns.
///
/// Built from a ``WatchSet`` by looking at the file system as it is now:
/// - every configured file's directory, for the file's name;
/// - along symlinks (the file itself, or a directory on its path), the directory holding each
///   link, for the link's name, and the directory of the link's target, for the target's name;
/// - the directory of the fully resolved path (`realpath`), for the resolved name;
/// - for a directory that does not exist, its nearest existing ancestor, for the name of the
///   next path component (so its creation is seen).
///
/// Directories are keyed by their real path, so a watch follows the directory a symlink points
/// to *now*; after any event that can change links or directories the plan is rebuilt.
///
/// A relative link target is joined to the real path of the directory holding the link before
/// `..` is folded (``LexicalPath/normalize(_:)``), so `..` in a target means what the kernel makes
/// of it there.
///
/// Building a plan only reads the file system; the watcher does it without holding its lock.
struct WatchPlan: Sendable, Equatable {
    /// Real directory path → entry name → templates.
    private(set) var names: [String: [String: Set<String>]] = [:]
    /// Real directory path → every template with some interest in that directory.
    private(set) var templatesByDirectory: [String: Set<String>] = [:]

    /// The directories to hold an inotify watch on.
    var directories: Set<String> { Set(names.keys) }

    init() {}

    mutating func add(directory: String, name: String, template: String) {
        names[directory, default: [:]][name, default: []].insert(template)
        templatesByDirectory[directory, default: []].insert(template)
    }

    /// The templates an event naming `name` inside `directory` may have changed.
    /// A name starting with `..` (a Kubernetes ConfigMap `..data` swap) concerns every
    /// template with an interest in the directory.
    func templates(directory: String, name: String) -> Set<String> {
        if name.hasPrefix("..") { return templatesByDirectory[directory] ?? [] }
        return names[directory]?[name] ?? []
    }

    /// Every template with an interest in `directory`.
    func templates(directory: String) -> Set<String> {
        templatesByDirectory[directory] ?? []
    }

    /// The templates with an interest `(directory, name)` here that `old` did not have.
    func templatesGainingFiles(since old: WatchPlan) -> Set<String> {
        var gained: Set<String> = []
        for (directory, byName) in names {
            let before = old.names[directory] ?? [:]
            for (name, templates) in byName { gained.formUnion(templates.subtracting(before[name] ?? [])) }
        }
        return gained
    }

    /// Builds the plan for `set` from the current state of the file system.
    init(_ set: WatchSet) {
        for (template, paths) in set.files {
            for path in paths {
                var points: [(String, String)] = []
                Self.interestPoints(of: LexicalPath.normalize(path), depth: 0, into: &points)
                for (dir, name) in points {
                    if let (watchDir, watchName) = Self.watchTarget(directory: dir, name: name) {
                        add(directory: watchDir, name: watchName, template: template)
                    }
                }
            }
        }
    }

    /// Symlink hops followed at most, as the kernel's `MAXSYMLINKS`.
    private static let maxDepth = 40

    private static func interestPoints(of path: String, depth: Int, into points: inout [(String, String)]) {
        let (dir, name) = LexicalPath.split(path)
        points.append((dir, name))
        guard depth < maxDepth else { return }
        // Symbolic links among the directories on the way (e.g. ConfigMap `..data`).
        var prefix = ""
        for component in dir.split(separator: "/") {
            prefix += "/" + component
            if FileProbe.isSymlink(prefix), let target = FileProbe.readlink(prefix) {
                let (parent, linkName) = LexicalPath.split(prefix)
                points.append((parent, linkName))
                let resolved = LexicalPath.absolute(target, relativeTo: FileProbe.realpath(parent) ?? parent)
                points.append(LexicalPath.split(resolved))
            }
        }
        // The file itself is a link: follow the chain.
        if FileProbe.isSymlink(path), let target = FileProbe.readlink(path) {
            interestPoints(
                of: LexicalPath.absolute(target, relativeTo: FileProbe.realpath(dir) ?? dir), depth: depth + 1,
                into: &points)
        }
        if depth == 0, let real = FileProbe.realpath(path), real != path {
            points.append(LexicalPath.split(real))
        }
    }

    /// Where to watch for `name` in `directory`: the directory's real path if it exists,
    /// else the nearest existing ancestor for the next component's name.
    private static func watchTarget(directory: String, name: String) -> (String, String)? {
        if let real = FileProbe.realDirectory(directory) { return (real, name) }
        var child = directory
        while child != "/" {
            let (parent, childName) = LexicalPath.split(child)
            if let real = FileProbe.realDirectory(parent) { return (real, childName) }
            child = parent
        }
        return nil
    }
}
