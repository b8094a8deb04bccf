import SystemPackage

/// Why the watch stage could not set up or keep its inotify watches.
public enum TemplateWatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `inotify_add_watch` failed with `ENOSPC`: the per-user watch limit is reached.
    case watchLimitReached(directory: String)
    /// `inotify_init1` failed with `EMFILE`: the per-user instance limit (or the process's
    /// descriptor limit) is reached.
    case instanceLimitReached(Errno)
    /// Another system call failed.
    case systemCall(String, path: String?, Errno)
    /// `run()` was called while already running, or after it had finished.
    case notRunnable

    /// A sysctl hint an operator can act on, if there is one.
    public var hint: String? {
        switch self {
        case .watchLimitReached:
            return "raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=524288, "
                + "persist in /etc/sysctl.d/); other programs of this user hold the watches"
        case .instanceLimitReached:
            return "raise fs.inotify.max_user_instances (sysctl -w fs.inotify.max_user_instances=512) "
                + "or the open-file limit (LimitNOFILE=)"
        case .systemCall, .notRunnable:
            return nil
        }
    }

    public var description: String {
        switch self {
        case .watchLimitReached(let dir):
            return "cannot watch \(dir): inotify watch limit reached (ENOSPC, fs.inotify.max_user_watches); \(hint!)"
        case .instanceLimitReached(let e):
            return "cannot create an inotify instance: \(e) (fs.inotify.max_user_instances); \(hint!)"
        case .systemCall(let call, let path, let e):
            return "\(call)\(path.map { " \($0)" } ?? "") failed: \(e)"
        case .notRunnable:
            return "the template watcher is already running or has stopped"
        }
    }
}
