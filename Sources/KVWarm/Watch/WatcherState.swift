#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// What ``TemplateWatcher`` keeps under its lock: the phase, the newest requested set and its
/// generation, the plan numbering, the waiters, the applied plan and the kernel watches.
///
/// Every method runs with the lock held. The methods that add or remove kernel watches make
/// those calls through the `syscalls` they are given, so a watch is recorded in the same critical
/// section that creates it and forgotten in the one that removes it. Resuming waiters and closing
/// descriptors are left to the caller: the methods that end them return them.
struct WatcherState {
    enum Phase { case idle, running, stopped }

    struct Waiter {
        var generation: UInt64
        var continuation: CheckedContinuation<Void, Never>
    }

    /// The set and number a plan is built from, taken under the lock before building starts.
    struct Ticket {
        var set: WatchSet
        var generation: UInt64
        var number: UInt64
    }

    /// What one reconciliation did, accumulated over its rounds.
    struct ReconcileOutcome {
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
        /// Whether ``TemplateWatcher/run()`` was running when the plan was applied.
        var running = false
    }

    /// What ``stop()`` took out of the state, for the caller to close and resume.
    struct Released {
        var fd: CInt?
        var wake: WakePipe?
        var waiters: [CheckedContinuation<Void, Never>]
    }

    var phase = Phase.idle
    var fd: CInt?
    var wake: WakePipe?
    /// The newest set asked for, by ``TemplateWatcher/request(_:)`` or
    /// ``TemplateWatcher/update(_:)``, and its generation.
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

    // MARK: - Sets and plans

    /// Records `set` as the newest asked for and returns its generation.
    mutating func record(_ set: WatchSet) -> UInt64 {
        self.set = set
        generation += 1
        return generation
    }

    /// Creates the inotify descriptor with `inotify_init1` unless there is one.
    mutating func openIfNeeded(syscalls: some InotifySyscalls) throws(TemplateWatcherError) {
        guard fd == nil else { return }
        do throws(Errno) {
            fd = try syscalls.initialize(flags: Int32(IN_NONBLOCK | IN_CLOEXEC))
        } catch where error == .tooManyOpenFiles || error == .tooManyOpenFilesInSystem {
            throw .instanceLimitReached(error)
        } catch {
            throw .systemCall("inotify_init1", path: nil, error)
        }
    }

    /// Numbers a plan about to be built from the newest set.
    mutating func takeTicket() -> Ticket {
        defer { nextTicket += 1 }
        return Ticket(set: set, generation: generation, number: nextTicket)
    }

    /// Swaps `plan` in and adds and removes kernel watches for it, unless a plan started later
    /// was applied already or a newer set was asked for since (whoever asked plans that one).
    /// Returns whether another round is needed: a watch was added, or a directory was gone
    /// when it was to be watched.
    mutating func apply(
        _ plan: WatchPlan, _ ticket: Ticket, syscalls: some InotifySyscalls, into out: inout ReconcileOutcome
    ) -> Bool {
        guard ticket.number > appliedTicket, ticket.generation == generation else {
            out.superseded = true
            return false
        }
        appliedTicket = ticket.number
        out.superseded = false
        out.generation = ticket.generation
        out.appliedRounds += 1
        out.templateCount = ticket.set.files.count
        let old = self.plan
        self.plan = plan
        guard let fd, phase != .stopped else { return false }
        out.running = phase == .running
        out.recheck.formUnion(plan.templatesGainingFiles(since: old))
        let refresh = refreshPending
        refreshPending = false
        let wanted = plan.directories
        for (dir, wd) in wdByDirectory where !wanted.contains(dir) {
            wdByDirectory[dir] = nil
            directoriesByWD[wd]?.remove(dir)
            if directoriesByWD[wd]?.isEmpty ?? true {
                directoriesByWD[wd] = nil
                // EINVAL means the kernel dropped it already; its IN_IGNORED is queued either way.
                try? syscalls.removeWatch(fd: fd, wd: wd)
                droppedWDs.insert(wd)
            }
        }
        var changed = false
        for dir in wanted.sorted() where refresh || wdByDirectory[dir] == nil {
            do throws(Errno) {
                let wd = try retryingOnInterrupt { () throws(Errno) in
                    try syscalls.addWatch(fd: fd, path: dir, mask: InotifyMask.directoryWatch)
                }
                if let old = wdByDirectory[dir] {
                    if old == wd { continue }
                    directoriesByWD[old]?.remove(dir)
                    if directoriesByWD[old]?.isEmpty ?? false { dropWatch(old, removingWith: syscalls) }
                }
                wdByDirectory[dir] = wd
                directoriesByWD[wd, default: []].insert(dir)
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
        out.watched = wdByDirectory.count
        return changed
    }

    /// Forgets a watch. With `syscalls`, also `inotify_rm_watch`s it (if the descriptor is open)
    /// and expects its `IN_IGNORED`.
    mutating func dropWatch(_ wd: CInt, removingWith syscalls: (any InotifySyscalls)?) {
        for dir in directoriesByWD[wd] ?? [] where wdByDirectory[dir] == wd {
            wdByDirectory[dir] = nil
        }
        directoriesByWD[wd] = nil
        if let syscalls, let fd {
            try? syscalls.removeWatch(fd: fd, wd: wd)
            droppedWDs.insert(wd)
        }
    }

    // MARK: - Waiters

    /// Numbers a new waiter.
    mutating func nextWaiterID() -> UInt64 {
        nextWaiter += 1
        return nextWaiter
    }

    /// Registers `continuation` to be resumed once `generation` is applied; returns `false`
    /// without registering it when it is to be resumed now (applied already, stopped, or
    /// `cancelled`).
    mutating func addWaiter(
        _ id: UInt64, generation: UInt64, _ continuation: CheckedContinuation<Void, Never>, cancelled: Bool
    ) -> Bool {
        if appliedGeneration >= generation || phase == .stopped || cancelled { return false }
        waiters[id] = Waiter(generation: generation, continuation: continuation)
        return true
    }

    /// Removes the waiter `id` and returns its continuation, if it is still registered.
    mutating func removeWaiter(_ id: UInt64) -> CheckedContinuation<Void, Never>? {
        waiters.removeValue(forKey: id)?.continuation
    }

    /// Marks `generation` as applied, unless a newer one is; removes the waiters it satisfies
    /// and returns their continuations.
    mutating func publish(_ generation: UInt64) -> [CheckedContinuation<Void, Never>] {
        guard generation > appliedGeneration else { return [] }
        appliedGeneration = generation
        var satisfied: [CheckedContinuation<Void, Never>] = []
        for (id, w) in waiters where w.generation <= generation {
            waiters[id] = nil
            satisfied.append(w.continuation)
        }
        return satisfied
    }

    // MARK: - Stopping

    /// Moves to ``Phase/stopped``, forgets every watch, and hands out the descriptor, the wake
    /// pipe and every waiter. Closing the descriptor releases every kernel watch.
    mutating func stop() -> Released {
        let released = Released(fd: fd, wake: wake, waiters: waiters.values.map(\.continuation))
        fd = nil
        wake = nil
        wdByDirectory = [:]
        directoriesByWD = [:]
        droppedWDs = []
        phase = .stopped
        waiters = [:]
        return released
    }
}
