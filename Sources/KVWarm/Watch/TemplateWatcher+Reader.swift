#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import SystemPackage

// MARK: - Reader thread

extension TemplateWatcher {
    /// Polls the inotify descriptor and the wake pipe, reads and handles events until the wake
    /// pipe is readable (success) or `poll` or `read` fails for good (the error, logged).
    func readLoop(fd: CInt, wake: WakePipe) -> Result<Void, any Error> {
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

    /// Maps one read's events to templates, reconciles if any may have changed links or
    /// directories, yields at most one element. The mapping holds the lock; the plan is rebuilt
    /// without it.
    func handle(_ events: [InotifyEvent]) {
        let logRaw = logger.logLevel <= .debug
        var out = state.withLock { s in s.map(events, keepingRaw: logRaw, syscalls: syscalls) }
        var errors: [TemplateWatcherError] = []
        var applied: WatcherState.ReconcileOutcome?
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
}
