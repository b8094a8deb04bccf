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
/// - Symlinked paths are also watched at their targets; after every relevant event other than a
///   plain `IN_CLOSE_WRITE` the watch set is recomputed, so it follows symlink swaps and
///   directories that are removed and recreated (a missing directory is covered by a watch on
///   its nearest existing ancestor).
/// - `IN_Q_OVERFLOW` yields ``WatchChange/rescanAll``.
/// - All events of one `read()` are merged into at most one element.
///
/// What to watch is set by ``request(_:)`` (asynchronous: applied by ``run()``) or by
/// ``update(_:)`` (synchronous). The newest set always wins. Every ``WatchPlan`` is built
/// (`lstat`/`readlink`/`realpath` per path component) without holding the watcher's lock;
/// the lock is taken only to compare the plan with the kernel watches, add or remove
/// watches, and swap the plan in. Plans are numbered in the order their building starts; a
/// plan is dropped unapplied if a plan started later has been applied or a newer set has been
/// asked for, so a plan built from an older set, or from the file system as it was before an
/// event, never replaces a newer one.
///
/// While ``run()`` runs, every application of a plan yields ``WatchChange/templates(_:)`` for
/// the templates that gained a watched file or have a file in a directory whose watch was just
/// added: a file created, changed or removed there after the set was requested but before the
/// watch existed produced no event, and downstream re-reads and hash-compares, so the extra
/// element costs one re-read and loses nothing. Before `run()` (the synchronous first install)
/// nothing is yielded: the caller reads the files after ``update(_:)`` returns.
///
/// - Important: Reading happens on a dedicated thread blocked in `poll()`, never on a thread of
///   Swift's cooperative pool; so does the plan rebuilt after an event. Requested sets are taken
///   by a task of ``run()`` and planned and applied on a serial dispatch queue, also off that
///   pool. ``update(_:)`` plans on the caller's thread. ``changes`` has a single consumer and
///   buffers without bound.
public final class TemplateWatcher: Sendable {
    /// Bytes per `read()`; far above the kernel's minimum of `16 + NAME_MAX + 1`.
    static let readBufferSize = 64 * 1024
    /// Plan-and-apply rounds at most per reconciliation (a round repeats while watches had to be added).
    static let maxRounds = 16

    private let syscalls: any InotifySyscalls
    private let planner: @Sendable (WatchSet) -> WatchPlan
    private let logger: Logger
    private let state: Mutex<State>
    private let stream: AsyncStream<WatchChange>
    private let continuation: AsyncStream<WatchChange>.Continuation
    /// Generations of requested sets, newest only; the set itself is read from the state.
    private let requests: AsyncStream<UInt64>
    private let requestSink: AsyncStream<UInt64>.Continuation
    /// Where requested sets are planned and applied: `lstat`, `realpath` and `inotify_add_watch`
    /// block, and a slow file system must not hold a thread of Swift's cooperative pool.
    private let planningQueue = DispatchQueue(label: "kvwarm.watch.plan")

    /// Creates a watcher on the kernel's inotify. No descriptor is opened until ``update(_:)``
    /// or ``run()``.
    public convenience init(logger: Logger) {
        self.init(syscalls: KernelInotify(), logger: logger)
    }

    /// Creates a watcher on injected system calls and, optionally, an injected plan builder (tests).
    init(
        syscalls: some InotifySyscalls, logger: Logger,
        planner: @escaping @Sendable (WatchSet) -> WatchPlan = { WatchPlan($0) }
    ) {
        self.syscalls = syscalls
        self.planner = planner
        self.logger = logger
        self.state = Mutex(State())
        (stream, continuation) = AsyncStream.makeStream(of: WatchChange.self, bufferingPolicy: .unbounded)
        (requests, requestSink) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(1))
    }

    deinit {
        // Only reached when run() never ran (a running reader thread holds a reference).
        state.withLock { s in
            if let fd = s.fd { try? syscalls.close(fd: fd) }
            s.fd = nil
        }
        requestSink.finish()
        continuation.finish()
    }

    /// The changes seen, in order. Finishes when ``run()`` returns. Single consumer.
    public var changes: AsyncStream<WatchChange> { stream }

    /// The generation of the newest set whose application has finished (0 before any).
    /// Generations count every ``request(_:)`` and ``update(_:)``.
    public var appliedGeneration: UInt64 { state.withLock { $0.appliedGeneration } }

    /// Asks for `set` to be watched and returns at once; never blocks on file-system probing,
    /// the kernel or the reader thread, and never throws.
    ///
    /// The task in ``run()`` builds the plan and applies it; if more sets are requested
    /// meanwhile, only the newest is applied. Failures (`ENOSPC` at the
    /// `fs.inotify.max_user_watches` limit, other `inotify_add_watch` errors) are logged there,
    /// once per application, as "cannot watch template files: …" with `MESSAGE_ID` watch-error
    /// and `OUTCOME=failed`. A set requested before `run()` is applied when it starts; after
    /// `run()` has returned it is only recorded.
    ///
    /// - Returns: The set's generation, for ``waitApplied(_:)``.
    @discardableResult
    public func request(_ set: WatchSet) -> UInt64 {
        state.withLock { s in
            s.set = set
            s.generation += 1
            // Yielded under the lock so the stream's newest element is the newest generation.
            if s.phase != .stopped { requestSink.yield(s.generation) }
            return s.generation
        }
    }

    /// Returns once the set of `generation` (or a newer one) has been applied, the watcher has
    /// stopped, or the calling task is cancelled. "Applied" means the kernel watches were
    /// reconciled with its plan, whether or not every watch could be added.
    public func waitApplied(_ generation: UInt64) async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                state.withLock { s in
                    if s.appliedGeneration >= generation || s.phase == .stopped || Task.isCancelled {
                        c.resume()
                    } else {
                        s.waiters[id] = Waiter(generation: generation, continuation: c)
                    }
                }
            }
        } onCancel: {
            state.withLock { s in s.waiters.removeValue(forKey: id)?.continuation.resume() }
        }
    }

    /// Sets what to watch and reconciles the kernel watches with it before returning.
    /// Callable any time, before or while ``run()`` runs; after `run()` has returned it only
    /// records the set.
    ///
    /// For the first set, before `run()`: the watches exist when it returns, so files read
    /// afterwards cannot change unseen. Later sets should go through ``request(_:)``, which
    /// does not make the caller wait for the probing and the kernel.
    ///
    /// Events for directories already watched keep flowing while the set changes. Every
    /// directory that can be watched is; each failure is logged as by ``request(_:)`` and the
    /// first is then thrown, so callers need not log it again. If a newer set is requested while
    /// this one is being planned, the newer one wins and this returns without error.
    ///
    /// - Throws: ``TemplateWatcherError/watchLimitReached(directory:)`` when the
    ///   `fs.inotify.max_user_watches` limit is hit (`ENOSPC`),
    ///   ``TemplateWatcherError/instanceLimitReached(_:)`` when no inotify instance can be
    ///   created (`EMFILE`), ``TemplateWatcherError/systemCall(_:path:_:)`` otherwise.
    public func update(_ set: WatchSet) throws {
        let proceed: Bool
        do throws(TemplateWatcherError) {
            proceed = try state.withLock { (s) throws(TemplateWatcherError) -> Bool in
                s.set = set
                s.generation += 1
                guard s.phase != .stopped else { return false }
                try openIfNeeded(&s)
                return true
            }
        } catch {
            logApplyErrors([error])
            throw error
        }
        guard proceed else { return }
        let outcome = reconcile()
        finish(outcome)
        if let first = outcome.errors.first { throw first }
    }

    /// Reads events until the calling task is cancelled, then releases the inotify
    /// descriptor and finishes ``changes``. Meanwhile a child task applies the sets passed to
    /// ``request(_:)``.
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
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.applyRequests() }
                try await readOnThread(fd: fd, wake: wake)
                group.cancelAll()  // shutdown() finished the request stream already; this is belt and braces
            }
        } onCancel: {
            state.withLock { s in s.wake?.signal() }
        }
    }

    /// Runs ``readLoop(fd:wake:)`` on a dedicated thread until it ends, then shuts down.
    private func readOnThread(fd: CInt, wake: WakePipe) async throws {
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
    }

    /// Applies requested sets, newest first, until the request stream finishes or the task is
    /// cancelled. The probing and the system calls run on ``planningQueue``.
    private func applyRequests() async {
        for await _ in requests {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                planningQueue.async { [self] in
                    // The newest recorded set, which is this element's or a newer one.
                    finish(reconcile())
                    done.resume()
                }
            }
        }
    }

    /// After an application by ``update(_:)`` or ``applyRequests()``: logs it, yields the
    /// templates to re-check, and releases the waiters of its generation.
    private func finish(_ outcome: ReconcileOutcome) {
        if outcome.appliedRounds > 0 {
            logger.debug(
                "watch set updated",
                metadata: meta(.watchEvent, [
                    "TEMPLATES": "\(outcome.templateCount)", "DIRECTORIES": "\(outcome.watched)",
                    "GENERATION": "\(outcome.generation)",
                ]))
        }
        logApplyErrors(outcome.errors)
        if outcome.running, !outcome.recheck.isEmpty { continuation.yield(.templates(outcome.recheck)) }
        if !outcome.superseded { publish(outcome.generation) }
    }

    /// Marks `generation` as applied and resumes the waiters it satisfies.
    private func publish(_ generation: UInt64) {
        state.withLock { s in
            guard generation > s.appliedGeneration else { return }
            s.appliedGeneration = generation
            for (id, w) in s.waiters where w.generation <= generation {
                s.waiters[id] = nil
                w.continuation.resume()
            }
        }
    }

    // MARK: - State

    private enum Phase { case idle, running, stopped }

    private struct Waiter {
        var generation: UInt64
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var phase = Phase.idle
        var fd: CInt?
        var wake: WakePipe?
        /// The newest set asked for, by ``request(_:)`` or ``update(_:)``, and its generation.
        var set = WatchSet(files: [:])
        var generation: UInt64 = 0
        /// Plan numbers, in the order plan building starts; `appliedTicket` is the last applied.
        var nextTicket: UInt64 = 1
        var appliedTicket: UInt64 = 0
        /// The newest generation whose application has finished (what waiters see).
        var appliedGeneration: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var plan = WatchPlan()
        /// Set after an overflow (`IN_IGNORED` records may be lost): the next application adds
        /// every wanted directory again. The kernel returns the existing wd for a live watch and
        /// a new one for a directory that was replaced, whose old watch is then dropped.
        var refreshPending = false
        var wdByDirectory: [String: CInt] = [:]
        var directoriesByWD: [CInt: Set<String>] = [:]
        /// Watches we dropped whose `IN_IGNORED` is still to come (wd numbers get reused).
        var droppedWDs: Set<CInt> = []
    }

    /// The set and number a plan is built from, taken under the lock before building starts.
    private struct Ticket {
        var set: WatchSet
        var generation: UInt64
        var number: UInt64
    }

    private struct ReconcileOutcome {
        var errors: [TemplateWatcherError] = []
        var watched = 0
        var templateCount = 0
        /// Templates that gained a watched file or have a file in a directory whose watch was
        /// just added (it may have appeared, changed or gone before the watch existed).
        var recheck: Set<String> = []
        /// The generation of the last plan applied.
        var generation: UInt64 = 0
        var appliedRounds = 0
        /// A plan started later was applied first; its builder finishes the job.
        var superseded = false
        /// Whether ``run()`` was running when the plan was applied.
        var running = false
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

    /// Brings the kernel watches in line with a fresh ``WatchPlan`` of the newest set. The plan
    /// is built without the lock; the lock is held only to apply it. Repeats while a watch had to
    /// be added (a directory may appear between looking and watching) until a round adds none.
    /// Stops early when a plan started later has been applied.
    private func reconcile() -> ReconcileOutcome {
        var out = ReconcileOutcome()
        for _ in 0..<Self.maxRounds {
            let ticket = state.withLock { s -> Ticket in
                defer { s.nextTicket += 1 }
                return Ticket(set: s.set, generation: s.generation, number: s.nextTicket)
            }
            let plan = planner(ticket.set)
            let again = state.withLock { s in apply(plan, ticket, &s, &out) }
            guard again else { break }
        }
        return out
    }

    /// Swaps `plan` in and adds and removes kernel watches for it, unless a plan started later
    /// was applied already or a newer set was asked for since (whoever asked plans that one).
    /// Returns whether another round is needed.
    private func apply(_ plan: WatchPlan, _ ticket: Ticket, _ s: inout State, _ out: inout ReconcileOutcome) -> Bool {
        guard ticket.number > s.appliedTicket, ticket.generation == s.generation else {
            out.superseded = true
            return false
        }
        s.appliedTicket = ticket.number
        out.superseded = false
        out.generation = ticket.generation
        out.appliedRounds += 1
        out.templateCount = ticket.set.files.count
        let old = s.plan
        s.plan = plan
        guard let fd = s.fd, s.phase != .stopped else { return false }
        out.running = s.phase == .running
        out.recheck.formUnion(plan.templatesGainingFiles(since: old))
        let refresh = s.refreshPending
        s.refreshPending = false
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
                out.recheck.formUnion(plan.templates(directory: dir))
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
        out.watched = s.wdByDirectory.count
        return changed
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
            for w in s.waiters.values { w.continuation.resume() }
            s.waiters = [:]
        }
        requestSink.finish()
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
        /// Whether an event may have changed links or directories, so the plan is rebuilt.
        var replan = false
        var raw: [(InotifyEvent, Set<String>)] = []
    }

    /// Maps one read's events to templates, reconciles if any may have changed links or
    /// directories, yields at most one element. The mapping holds the lock; the plan is rebuilt
    /// without it.
    func handle(_ events: [InotifyEvent]) {
        let logRaw = logger.logLevel <= .debug
        var out = state.withLock { (s) -> BatchOutcome in
            var out = BatchOutcome()
            for e in events {
                let dirs = s.directoriesByWD[e.wd] ?? []
                if logRaw { out.raw.append((e, dirs)) }
                if e.wd == -1 || e.has(InotifyMask.queueOverflow) {
                    out.overflow = true
                    out.replan = true
                    s.refreshPending = true
                } else if e.has(InotifyMask.ignored) {
                    if s.droppedWDs.remove(e.wd) == nil {
                        dropWatch(e.wd, &s, removeFromKernel: false)
                        out.replan = true
                    }
                } else if e.has(InotifyMask.deleteSelf) || e.has(InotifyMask.moveSelf) || e.has(InotifyMask.unmount) {
                    // The directory is gone or elsewhere: its files went with it. Drop the watch now
                    // (its path may be recreated before IN_IGNORED is read) and look again.
                    for dir in dirs { out.templates.formUnion(s.plan.templates(directory: dir)) }
                    if !dirs.isEmpty {
                        dropWatch(e.wd, &s, removeFromKernel: true)
                        out.replan = true
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
                            // Writing a file's content changes no link or directory.
                            if e.mask & ~InotifyMask.closeWrite != 0 { out.replan = true }
                        }
                    }
                }
            }
            return out
        }
        var errors: [TemplateWatcherError] = []
        var applied: ReconcileOutcome?
        if out.replan {
            let r = reconcile()
            out.templates.formUnion(r.recheck)
            errors = r.errors
            applied = r
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
        logApplyErrors(errors)
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
        if let applied, !applied.superseded { publish(applied.generation) }
    }

    // MARK: - Logging

    private func meta(_ id: MessageID, _ extra: Logger.Metadata) -> Logger.Metadata {
        Logger.Metadata.stage(.watch, id).merging(extra) { $1 }
    }

    private func errorMetadata(_ error: TemplateWatcherError) -> Logger.Metadata {
        var extra: Logger.Metadata = [LogField.reason: .string(error.description)]
        if let hint = error.hint { extra[LogField.hint] = .string(hint) }
        if case .watchLimitReached(let dir) = error { extra[LogField.path] = .string(dir) }
        if case .systemCall(_, let path?, _) = error { extra[LogField.path] = .string(path) }
        return meta(.watchError, extra)
    }

    /// Logs failures to set up watches: "cannot watch template files: …", `OUTCOME=failed`.
    private func logApplyErrors(_ errors: [TemplateWatcherError]) {
        for error in errors {
            var metadata = errorMetadata(error)
            metadata[LogField.outcome] = .string(Outcome.failed.rawValue)
            logger.error("cannot watch template files: \(error)", metadata: metadata)
        }
    }

    /// Logs failures of the reader (`poll`, `read`) or of starting it.
    private func logErrors(_ errors: [TemplateWatcherError]) {
        for error in errors {
            logger.error("watch failed: \(error)", metadata: errorMetadata(error))
        }
    }
}
