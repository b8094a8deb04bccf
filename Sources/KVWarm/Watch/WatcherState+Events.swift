extension WatcherState {
    /// What one `read()`'s events come to.
    struct EventBatch {
        var templates: Set<String> = []
        /// Templates whose only events in the batch were IN_ATTRIB.
        var attributesOnly: Set<String> = []
        var overflow = false
        /// Whether an event may have changed links or directories, so the plan is rebuilt.
        var replan = false
        /// Each event with the watched directories its wd stood for, when asked to keep them.
        var raw: [(InotifyEvent, Set<String>)] = []
    }

    /// Maps `events` to the templates they concern with the applied plan and updates the
    /// watch bookkeeping: an overflow (or wd -1) marks every watch for refreshing; an
    /// `IN_IGNORED` not expected forgets its watch; `IN_DELETE_SELF`, `IN_MOVE_SELF` and
    /// `IN_UNMOUNT` concern every template with a file in the directory and drop its watch
    /// through `syscalls`. With `keepingRaw`, each event is returned in ``EventBatch/raw``.
    mutating func map(
        _ events: [InotifyEvent], keepingRaw: Bool, syscalls: some InotifySyscalls
    ) -> EventBatch {
        var out = EventBatch()
        for e in events {
            let dirs = directoriesByWD[e.wd] ?? []
            if keepingRaw { out.raw.append((e, dirs)) }
            if e.wd == -1 || e.has(InotifyMask.queueOverflow) {
                out.overflow = true
                out.replan = true
                refreshPending = true
            } else if e.has(InotifyMask.ignored) {
                if droppedWDs.remove(e.wd) == nil {
                    dropWatch(e.wd, removingWith: nil)
                    out.replan = true
                }
            } else if e.has(InotifyMask.deleteSelf) || e.has(InotifyMask.moveSelf) || e.has(InotifyMask.unmount) {
                // The directory is gone or elsewhere: its files went with it. Drop the watch now
                // (its path may be recreated before IN_IGNORED is read) and look again.
                for dir in dirs { out.templates.formUnion(plan.templates(directory: dir)) }
                if !dirs.isEmpty {
                    dropWatch(e.wd, removingWith: syscalls)
                    out.replan = true
                }
            } else if !e.name.isEmpty {
                for dir in dirs {
                    let hit = plan.templates(directory: dir, name: e.name)
                    if !hit.isEmpty {
                        if e.mask & ~(InotifyMask.attrib | InotifyMask.isDir) == 0 {
                            out.attributesOnly.formUnion(hit)
                        } else {
                            out.templates.formUnion(hit)
                        }
                        // Writing a file's content changes no link or directory.
                        if e.mask & ~InotifyMask.closeWrite != 0 { out.replan = true }
                    }
                }
            }
        }
        return out
    }
}
