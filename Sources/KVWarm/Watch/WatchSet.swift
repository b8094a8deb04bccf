/// What to watch: each template's files, keyed by template name.
///
/// Paths are absolute, as configured (the template file and its include files); they may
/// go through symbolic links. The watcher watches the directories holding them, never the
/// files themselves, because editors save by rename.
public struct WatchSet: Sendable, Equatable {
    /// Template name → absolute paths of the files it depends on.
    public var files: [String: Set<String>]

    /// Creates a watch set from template name → absolute file paths.
    public init(files: [String: Set<String>]) {
        self.files = files
    }
}

/// What the watch stage reports downstream.
public enum WatchChange: Sendable, Equatable {
    /// These templates may have changed. Content is re-read and hash-compared downstream,
    /// so duplicates and false positives are harmless.
    case templates(Set<String>)
    /// Only the metadata of these templates changed (`IN_ATTRIB` alone: `chmod`, a timestamp, an
    /// editor restoring attributes after its write). A pass is due, but it need not wait for a
    /// longer quiet period when one is already pending.
    case attributes(Set<String>)
    /// Events were lost (queue overflow) or the watcher lost track: re-check every template.
    case rescanAll
}
