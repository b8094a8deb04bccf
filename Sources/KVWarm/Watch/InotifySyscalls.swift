#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// The inotify system calls the watch stage makes, behind a protocol so tests can
/// inject `EINTR`, `ENOSPC`, `EMFILE` or a queue overflow without a kernel.
///
/// Modelled on swift-system's mockable `system_*` wrappers: every call reports
/// failure as an `Errno`. ``KernelInotify`` is the real thing.
protocol InotifySyscalls: Sendable {
    /// `inotify_init1(flags)`; returns the new descriptor.
    func initialize(flags: Int32) throws(Errno) -> CInt
    /// `inotify_add_watch(fd, path, mask)`; returns the watch descriptor.
    func addWatch(fd: CInt, path: String, mask: UInt32) throws(Errno) -> CInt
    /// `inotify_rm_watch(fd, wd)`.
    func removeWatch(fd: CInt, wd: CInt) throws(Errno)
    /// `read(fd, buffer)`; returns the number of bytes read.
    func read(fd: CInt, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int
    /// `poll(fds, timeout)`; returns the number of ready descriptors and fills `revents`.
    func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) throws(Errno) -> Int
    /// `close(fd)`.
    func close(fd: CInt) throws(Errno)
}

/// The real inotify calls (Glibc or Musl). `EINTR` is retried, except by `close`, which on
/// Linux releases the descriptor even when interrupted.
struct KernelInotify: InotifySyscalls {
    init() {}

    func initialize(flags: Int32) throws(Errno) -> CInt {
        try valueOrErrno { inotify_init1(flags) }
    }

    func addWatch(fd: CInt, path: String, mask: UInt32) throws(Errno) -> CInt {
        try valueOrErrno { path.withCString { inotify_add_watch(fd, $0, mask) } }
    }

    func removeWatch(fd: CInt, wd: CInt) throws(Errno) {
        _ = try valueOrErrno { inotify_rm_watch(fd, wd) }
    }

    func read(fd: CInt, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno { libcRead(fd, buffer.baseAddress, buffer.count) }
    }

    func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) throws(Errno) -> Int {
        let n = try fds.withUnsafeMutableBufferPointer { (p) throws(Errno) -> Int32 in
            try valueOrErrno { libcPoll(p.baseAddress, p.count, timeoutMilliseconds) }
        }
        return Int(n)
    }

    func close(fd: CInt) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: false) { libcClose(fd) }
    }
}

/// Runs `call` until it returns something other than -1 with `EINTR`; -1 becomes the `Errno`.
func valueOrErrno<T: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ call: () -> T
) throws(Errno) -> T {
    while true {
        let r = call()
        if r != -1 { return r }
        let e = Errno(rawValue: errno)
        if retryOnInterrupt && e == .interrupted { continue }
        throw e
    }
}

/// Calls `body` again while it throws `EINTR` (for calls through an injected seam).
func retryingOnInterrupt<T>(_ body: () throws(Errno) -> T) throws(Errno) -> T {
    while true {
        do throws(Errno) {
            return try body()
        } catch where error == .interrupted {
            continue
        }
    }
}

/// inotify mask bits as `UInt32` (Glibc imports them as `Int32`).
enum InotifyMask {
    static let access = UInt32(IN_ACCESS)
    static let modify = UInt32(IN_MODIFY)
    static let attrib = UInt32(IN_ATTRIB)
    static let closeWrite = UInt32(IN_CLOSE_WRITE)
    static let movedFrom = UInt32(IN_MOVED_FROM)
    static let movedTo = UInt32(IN_MOVED_TO)
    static let create = UInt32(IN_CREATE)
    static let delete = UInt32(IN_DELETE)
    static let deleteSelf = UInt32(IN_DELETE_SELF)
    static let moveSelf = UInt32(IN_MOVE_SELF)
    static let unmount = UInt32(IN_UNMOUNT)
    static let queueOverflow = UInt32(IN_Q_OVERFLOW)
    static let ignored = UInt32(IN_IGNORED)
    static let onlyDir = UInt32(IN_ONLYDIR)
    static let exclUnlink = UInt32(IN_EXCL_UNLINK)
    static let isDir = UInt32(IN_ISDIR)

    /// What the watcher asks for on every directory. No `IN_MODIFY`: it fires mid-write.
    static let directoryWatch: UInt32 =
        closeWrite | movedTo | movedFrom | create | delete | attrib | deleteSelf | moveSelf | onlyDir | exclUnlink

    /// Readable names of the bits set in `mask`, for debug logs.
    static func describe(_ mask: UInt32) -> String {
        let names: [(UInt32, String)] = [
            (access, "ACCESS"), (modify, "MODIFY"), (attrib, "ATTRIB"), (closeWrite, "CLOSE_WRITE"),
            (movedFrom, "MOVED_FROM"), (movedTo, "MOVED_TO"), (create, "CREATE"), (delete, "DELETE"),
            (deleteSelf, "DELETE_SELF"), (moveSelf, "MOVE_SELF"), (unmount, "UNMOUNT"),
            (queueOverflow, "Q_OVERFLOW"), (ignored, "IGNORED"), (isDir, "ISDIR"),
        ]
        let set = names.filter { mask & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "0x" + String(mask, radix: 16) : set.joined(separator: "|")
    }
}
