#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Logging
import Synchronization
import SystemPackage

/// The watch stage: turns inotify events on the directories holding template files into
/// ``WatchChange`` values.
///
/// - Watches directories, never files (editors save by rename, which kills a file watch),
///   for `IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |
///   IN_DELETE_SELF | IN_MOVE_SELF`, never `IN_MODIFY`.
/// - An event `(directory, name)` maps to the templates with a file of that name there; editor
///   temporaries (`4913`, `*.swp`, `*~`, `sed` plus six random characters, `.#*`) match none and are ignored. A name
///   starting with `..` (Kubernetes ConfigMap `..data` swap) maps to every template with a file
///   in that directory.
/// - Symlinked paths are also watched at their targets; after every relevant event the watch
///   set is recomputed, so it follows symlink swaps and directories that are removed and
///   recreated (a missing directory is covered by a watch on its nearest existing ancestor).
/// - `IN_Q_OVERFLOW` yields ``WatchChange/rescanAll``.
/// - All events of one `read()` are merged into at most one element.
///
/// - Important: Reading happens on a dedicated thread blocked in `poll()`, never on a thread of
///   Swift's cooperative pool. ``changes`` has a single consumer and buffers without bound.
public final class TemplateWatcher: Sendable {
    /// Bytes per `read()`; far above the kernel's minimum of `16 + NAME_MAX + 1`.
    static let readBufferSize = 64 * 1024

    private let syscalls: any InotifySyscalls
    private let logger: Logger
    private let state: Mutex<State>
    private let stream: AsyncStream<WatchChange>
    private let continuation: AsyncStream<WatchChange>.Continuation

    /// Creates a watcher on the kernel's inotify. No descriptor is opened until ``update(_:)``
    /// or ``run()``.
    public convenience init(logger: Logger) {
        self.init(syscalls: KernelInotify(), logger: logger)
    }

    /// Creates a watcher on injected system calls (tests).
    init(syscalls: some InotifySyscalls, logger: Logger) {
        self.syscalls = syscalls
        self.logger = logger
        self.state = Mutex(State())
        (stream, continuation) = AsyncStream.makeStream(of: WatchChange.self, bufferingPolicy: .unbounded)
    }

    deinit {
        // Only reached when run() never ran (a running reader thread holds a reference).
        state.withLock { s in
            if let fd = s.fd { try? syscalls.close(fd: fd) }
            s.fd = nil
        }
        continuation.finish()
    }

    /// The changes seen, in order. Finishes when ``run()`` returns. Single consumer.
    public var changes: AsyncStream<WatchChange> { stream }

    /// Sets what to watch and reconciles the kernel watches with it. Callable any time,
    /// before or while ``run()`` runs; after `run()` has returned it only records the set.
    ///
    /// Events for directories already watched keep flowing while the set changes. Every
    /// directory that can be watched is; the first failure is then thrown.
    ///
    /// - Throws: ``TemplateWatcherError/watchLimitReached(directory:)`` when the
    ///   `fs.inotify.max_user_watches` limit is hit (`ENOSPC`),
    ///   ``TemplateWatcherError/instanceLimitReached(_:)`` when no inotify instance can be
    ///   created (`EMFILE`), ``TemplateWatcherError/systemCall(_:path:_:)`` otherwise.
    public func update(_ set: WatchSet) throws {
        let outcome = try state.withLock { (s) throws(TemplateWatcherError) -> ReconcileOutcome in
            s.set = set
            guard s.phase != .stopped else { return ReconcileOutcome() }
            try openIfNeeded(&s)
            return reconcile(&s)
        }
        logger.debug(
            "watch set updated",
            metadata: meta(.watchEvent, ["TEMPLATES": "\(set.files.count)", "DIRECTORIES": "\(outcome.watched)"]))
        logErrors(outcome.errors)
        if let first = outcome.errors.first { throw first }
    }

    /// Reads events until the calling task is cancelled, then releases the inotify
    /// descriptor and finishes ``changes``.
    ///
    /// - Throws: ``TemplateWatcherError/notRunnable`` if called twice; a
    ///   ``TemplateWatcherError`` if the descriptor cannot be created or reading fails for
    ///   good (``changes`` is finished then too). Cancellation is a normal return.
    public func run() async throws {
        let started: (CInt, WakePipe)
        do throws(TemplateWatcherError) {
            started = try state.withLock { (s) throws(TemplateWatcherError) -> (CInt, WakePipe) in
                guard s.phase == .idle else { throw .notRunnable }
                s.phase = .running
                try openIfNeeded(&s)
                let wake: WakePipe
                do throws(Errno) { wake = try WakePipe() } catch { throw .systemCall("pipe", path: nil, error) }
                s.wake = wake
                return (s.fd!, wake)
            }
        } catch {
            if error != .notRunnable {
                logErrors([error])
                shutdown()
            }
            throw error
        }
        let (fd, wake) = started
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread { [self] in
                    // Foundation's Thread.name does not reach the kernel on Linux: name it here
                    ThreadNaming.nameCurrentThread("kvwarm-inotify")
                    let result = readLoop(fd: fd, wake: wake)
                    shutdown()
                    done.resume(with: result)
                }
                thread.start()
            }
        } onCancel: {
            state.withLock { s in s.wake?.signal() }
        }
    }

    // MARK: - State

    private enum Phase { case idle, running, stopped }

    private struct State {
        var phase = Phase.idle
        var fd: CInt?
        var wake: WakePipe?
        var set = WatchSet(files: [:])
        var plan = WatchPlan()
        var wdByDirectory: [String: CInt] = [:]
        var directoriesByWD: [CInt: Set<String>] = [:]
        /// Watches we dropped whose `IN_IGNORED` is still to come (wd numbers get reused).
        var droppedWDs: Set<CInt> = []
    }

    private struct ReconcileOutcome {
        var added: Set<String> = []
        var errors: [TemplateWatcherError] = []
        var watched = 0
        /// Templates with an interest in a directory whose watch was just added (it may have
        /// appeared with the file already inside).
        var newDirectoryTemplates: Set<String> = []
    }

    private func openIfNeeded(_ s: inout State) throws(TemplateWatcherError) {
        guard s.fd == nil else { return }
        do throws(Errno) {
            s.fd = try syscalls.initialize(flags: Int32(IN_NONBLOCK | IN_CLOEXEC))
        } catch where error == .tooManyOpenFiles || error == .tooManyOpenFilesInSystem {
            throw .instanceLimitReached(error)
        } catch {
            throw .systemCall("inotify_init1", path: nil, error)
        }
    }

    /// Brings the kernel watches in line with a fresh ``WatchPlan``. Repeats while a watch had
    /// to be added (a directory may appear between looking and watching) until the plan is stable.
    ///
    /// With `refreshing` (after an overflow, when `IN_IGNORED` records may have been lost) every
    /// wanted directory is added again: the kernel returns the existing wd for a live watch and a
    /// new one for a directory that was replaced, whose old watch is then dropped.
    private func reconcile(_ s: inout State, refreshing: Bool = false) -> ReconcileOutcome {
        var out = ReconcileOutcome()
        guard let fd = s.fd else {
            s.plan = WatchPlan(s.set)
            return out
        }
        var plan = WatchPlan(s.set)
        var refresh = refreshing
        for _ in 0..<16 {
            s.plan = plan
            let wanted = plan.directories
            for (dir, wd) in s.wdByDirectory where !wanted.contains(dir) {
                s.wdByDirectory[dir] = nil
                s.directoriesByWD[wd]?.remove(dir)
                if s.directoriesByWD[wd]?.isEmpty ?? true {
                    s.directoriesByWD[wd] = nil
                    // EINVAL means the kernel dropped it already; its IN_IGNORED is queued either way.
                    try? syscalls.removeWatch(fd: fd, wd: wd)
                    s.droppedWDs.insert(wd)
                }
            }
            var changed = false
            for dir in wanted.sorted() where refresh || s.wdByDirectory[dir] == nil {
                do throws(Errno) {
                    let wd = try retryingOnInterrupt { () throws(Errno) in
                        try syscalls.addWatch(fd: fd, path: dir, mask: InotifyMask.directoryWatch)
                    }
                    if let old = s.wdByDirectory[dir] {
                        if old == wd { continue }
                        s.directoriesByWD[old]?.remove(dir)
                        if s.directoriesByWD[old]?.isEmpty ?? false { dropWatch(old, &s, removeFromKernel: true) }
                    }
                    s.wdByDirectory[dir] = wd
                    s.directoriesByWD[wd, default: []].insert(dir)
                    out.added.insert(dir)
                    changed = true
                } catch where error == .noSuchFileOrDirectory || error == .notDirectory {
                    changed = true  // gone since we looked: look again
                } catch {
                    let e: TemplateWatcherError = error == .noSpace
                        ? .watchLimitReached(directory: dir)
                        : .systemCall("inotify_add_watch", path: dir, error)
                    if !out.errors.contains(e) { out.errors.append(e) }
                }
            }
            refresh = false
            guard changed else { break }
            let next = WatchPlan(s.set)
            if next == plan { break }
            plan = next
        }
        out.watched = s.wdByDirectory.count
        out.newDirectoryTemplates = out.added.reduce(into: []) { $0.formUnion(s.plan.templates(directory: $1)) }
        return out
    }

    /// Forgets a watch; with `removeFromKernel`, also `inotify_rm_watch`s it and expects its `IN_IGNORED`.
    private func dropWatch(_ wd: CInt, _ s: inout State, removeFromKernel: Bool) {
        for dir in s.directoriesByWD[wd] ?? [] where s.wdByDirectory[dir] == wd {
            s.wdByDirectory[dir] = nil
        }
        s.directoriesByWD[wd] = nil
        if removeFromKernel, let fd = s.fd {
            try? syscalls.removeWatch(fd: fd, wd: wd)
            s.droppedWDs.insert(wd)
        }
    }

    private func shutdown() {
        state.withLock { s in
            if let fd = s.fd { try? syscalls.close(fd: fd) }  // releases every watch
            s.fd = nil
            s.wake?.close()
            s.wake = nil
            s.wdByDirectory = [:]
            s.directoriesByWD = [:]
            s.droppedWDs = []
            s.phase = .stopped
        }
        continuation.finish()
    }

    // MARK: - Reader thread

    private func readLoop(fd: CInt, wake: WakePipe) -> Result<Void, any Error> {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readBufferSize, alignment: 8)
        defer { buffer.deallocate() }
        var fds = [
            pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            do throws(Errno) {
                _ = try retryingOnInterrupt { () throws(Errno) in
                    try syscalls.poll(&fds, timeoutMilliseconds: -1)
                }
            } catch {
                return fail(.systemCall("poll", path: nil, error))
            }
            if fds[1].revents != 0 { return .success(()) }
            if fds[0].revents & Int16(POLLERR | POLLNVAL) != 0 {
                return fail(.systemCall("poll", path: nil, .badFileDescriptor))
            }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let n: Int
            do throws(Errno) {
                n = try retryingOnInterrupt { () throws(Errno) in try syscalls.read(fd: fd, into: buffer) }
            } catch where error == .resourceTemporarilyUnavailable {
                continue
            } catch {
                return fail(.systemCall("read", path: nil, error))
            }
            guard n > 0 else { continue }
            handle(InotifyEventParser.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<n])))
        }
    }

    private func fail(_ error: TemplateWatcherError) -> Result<Void, any Error> {
        logErrors([error])
        return .failure(error)
    }

    private struct BatchOutcome {
        var templates: Set<String> = []
        /// Templates whose only events in the batch were IN_ATTRIB.
        var attributesOnly: Set<String> = []
        var overflow = false
        var reconcile = false
        var raw: [(InotifyEvent, Set<String>)] = []
        var errors: [TemplateWatcherError] = []
    }

    /// Maps one read's events to templates, reconciles if any mattered, yields at most one element.
    func handle(_ events: [InotifyEvent]) {
        let logRaw = logger.logLevel <= .debug
        let out = state.withLock { (s) -> BatchOutcome in
            var out = BatchOutcome()
            for e in events {
                let dirs = s.directoriesByWD[e.wd] ?? []
                if logRaw { out.raw.append((e, dirs)) }
                if e.wd == -1 || e.has(InotifyMask.queueOverflow) {
                    out.overflow = true
                    out.reconcile = true
                } else if e.has(InotifyMask.ignored) {
                    if s.droppedWDs.remove(e.wd) == nil {
                        dropWatch(e.wd, &s, removeFromKernel: false)
                        out.reconcile = true
                    }
                } else if e.has(InotifyMask.deleteSelf) || e.has(InotifyMask.moveSelf) || e.has(InotifyMask.unmount) {
                    // The directory is gone or elsewhere: its files went with it. Drop the watch now
                    // (its path may be recreated before IN_IGNORED is read) and look again.
                    for dir in dirs { out.templates.formUnion(s.plan.templates(directory: dir)) }
                    if !dirs.isEmpty {
                        dropWatch(e.wd, &s, removeFromKernel: true)
                        out.reconcile = true
                    }
                } else if !e.name.isEmpty {
                    for dir in dirs {
                        let hit = s.plan.templates(directory: dir, name: e.name)
                        if !hit.isEmpty {
                            if e.mask & ~(InotifyMask.attrib | InotifyMask.isDir) == 0 {
                                out.attributesOnly.formUnion(hit)
                            } else {
                                out.templates.formUnion(hit)
                            }
                            out.reconcile = true
                        }
                    }
                }
            }
            if out.reconcile {
                let r = reconcile(&s, refreshing: out.overflow)
                out.templates.formUnion(r.newDirectoryTemplates)
                out.errors = r.errors
            }
            return out
        }
        for (e, dirs) in out.raw {
            logger.debug(
                "inotify event",
                metadata: meta(.watchEvent, [
                    LogField.path: .string(dirs.sorted().map { e.name.isEmpty ? $0 : $0 + "/" + e.name }
                        .joined(separator: ",")),
                    "INOTIFY_MASK": .string(InotifyMask.describe(e.mask)),
                    "INOTIFY_WD": .string(String(e.wd)),
                    "INOTIFY_COOKIE": .string(String(e.cookie)),
                ]))
        }
        logErrors(out.errors)
        if out.overflow {
            logger.info(
                "inotify event queue overflowed; events were lost, rescanning every template",
                metadata: meta(.watchOverflow, [LogField.hint: "raise fs.inotify.max_queued_events if this recurs"]))
            continuation.yield(.rescanAll)
        } else {
            if !out.templates.isEmpty { continuation.yield(.templates(out.templates)) }
            let attributes = out.attributesOnly.subtracting(out.templates)
            if !attributes.isEmpty { continuation.yield(.attributes(attributes)) }
        }
    }

    // MARK: - Logging

    private func meta(_ id: MessageID, _ extra: Logger.Metadata) -> Logger.Metadata {
        Logger.Metadata.stage(.watch, id).merging(extra) { $1 }
    }

    private func logErrors(_ errors: [TemplateWatcherError]) {
        for error in errors {
            var extra: Logger.Metadata = [LogField.reason: .string(error.description)]
            if let hint = error.hint { extra[LogField.hint] = .string(hint) }
            if case .watchLimitReached(let dir) = error { extra[LogField.path] = .string(dir) }
            if case .systemCall(_, let path?, _) = error { extra[LogField.path] = .string(path) }
            logger.error("watch failed: \(error)", metadata: meta(.watchError, extra))
        }
    }
}
