#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
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

    let syscalls: any InotifySyscalls
    private let planner: @Sendable (WatchSet) -> WatchPlan
    let logger: Logger
    let state: Mutex<WatcherState>
    private let stream: AsyncStream<WatchChange>
    let continuation: AsyncStream<WatchChange>.Continuation
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
        self.state = Mutex(WatcherState())
        (stream, continuation) = AsyncStream.makeStream(of: WatchChange.self, bufferingPolicy: .unbounded)
        (requests, requestSink) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(1))
    }

    deinit {
        // Only reached when run() never ran (a running reader thread holds a reference).
        let fd = state.withLock { s in
            defer { s.fd = nil }
            return s.fd
        }
        if let fd { try? syscalls.close(fd: fd) }
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
            let generation = s.record(set)
            // Yielded under the lock so the stream's newest element is the newest generation.
            if s.phase != .stopped { requestSink.yield(generation) }
            return generation
        }
    }

    /// Returns once the set of `generation` (or a newer one) has been applied, the watcher has
    /// stopped, or the calling task is cancelled. "Applied" means the kernel watches were
    /// reconciled with its plan, whether or not every watch could be added.
    public func waitApplied(_ generation: UInt64) async {
        let id = state.withLock { s in s.nextWaiterID() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { s in
                    s.addWaiter(id, generation: generation, c, cancelled: Task.isCancelled)
                }
                if !waiting { c.resume() }
            }
        } onCancel: {
            state.withLock { s in s.removeWaiter(id) }?.resume()
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
                _ = s.record(set)
                guard s.phase != .stopped else { return false }
                try s.openIfNeeded(syscalls: syscalls)
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
                try s.openIfNeeded(syscalls: syscalls)
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
            do throws(Errno) {
                try OSThread.detach(name: "kvwarm-inotify") { [self] in
                    let result = readLoop(fd: fd, wake: wake)
                    shutdown()
                    done.resume(with: result)
                }
            } catch {
                let failure = TemplateWatcherError.systemCall("pthread_create", path: nil, error)
                logErrors([failure])
                shutdown()
                done.resume(throwing: failure)
            }
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
    private func finish(_ outcome: WatcherState.ReconcileOutcome) {
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
    func publish(_ generation: UInt64) {
        for waiter in state.withLock({ s in s.publish(generation) }) { waiter.resume() }
    }

    /// Brings the kernel watches in line with a fresh ``WatchPlan`` of the newest set. The plan
    /// is built without the lock; the lock is held only to apply it. Repeats while a watch had to
    /// be added (a directory may appear between looking and watching) until a round adds none.
    /// Stops early when a plan started later has been applied.
    func reconcile() -> WatcherState.ReconcileOutcome {
        var out = WatcherState.ReconcileOutcome()
        for _ in 0..<Self.maxRounds {
            let ticket = state.withLock { s in s.takeTicket() }
            let plan = planner(ticket.set)
            let again = state.withLock { s in s.apply(plan, ticket, syscalls: syscalls, into: &out) }
            guard again else { break }
        }
        return out
    }

    /// Stops the watcher: closes the inotify descriptor (releasing every watch) and the wake
    /// pipe, resumes every waiter, and finishes the request stream and ``changes``.
    private func shutdown() {
        let released = state.withLock { s in s.stop() }
        if let fd = released.fd { try? syscalls.close(fd: fd) }
        released.wake?.close()
        for waiter in released.waiters { waiter.resume() }
        requestSink.finish()
        continuation.finish()
    }

    // MARK: - Logging

    func meta(_ id: MessageID, _ extra: Logger.Metadata) -> Logger.Metadata {
        .stage(.watch, id, extra)
    }

    private func errorMetadata(_ error: TemplateWatcherError) -> Logger.Metadata {
        var extra: Logger.Metadata = [LogField.reason: .string(error.description)]
        if let hint = error.hint { extra[LogField.hint] = .string(hint) }
        if case .watchLimitReached(let dir) = error { extra[LogField.path] = .string(dir) }
        if case .systemCall(_, let path?, _) = error { extra[LogField.path] = .string(path) }
        return meta(.watchError, extra)
    }

    /// Logs failures to set up watches: "cannot watch template files: …", `OUTCOME=failed`.
    func logApplyErrors(_ errors: [TemplateWatcherError]) {
        for error in errors {
            var metadata = errorMetadata(error)
            metadata[LogField.outcome] = .string(Outcome.failed.rawValue)
            logger.error("cannot watch template files: \(error)", metadata: metadata)
        }
    }

    /// Logs failures of the reader (`poll`, `read`) or of starting it.
    func logErrors(_ errors: [TemplateWatcherError]) {
        for error in errors {
            logger.error("watch failed: \(error)", metadata: errorMetadata(error))
        }
    }
}
