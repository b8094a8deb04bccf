#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The lock that makes one kvwarm the owner of a state directory: an exclusive `flock(2)` on
/// `kvwarm.pid` in it, holding the owner's pid. The kernel drops the lock when the process
/// exits, however it exits, so a stale file never blocks a new start.
///
/// `kvwarm run` takes it for its lifetime and adds a `ready` line once it sent READY=1;
/// `kvwarm warm` takes it for its run, so it cannot re-pin slots under a running daemon;
/// `kvwarm status` only asks who holds it (and `--ready` whether it is marked ready).
public final class InstanceLock: Sendable {
    public static let fileName = "kvwarm.pid"

    /// Who holds the lock of a state directory.
    public enum Holder: Sendable, Equatable {
        /// Nobody: no kvwarm runs on this state directory.
        case none
        /// A running kvwarm; its pid when the file names one.
        case process(pid: Int32?)
    }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// Another kvwarm holds the lock.
        case held(path: String, pid: Int32?)
        case system(path: String, errno: Int32)

        public var description: String {
            switch self {
            case .held(let path, let pid):
                "another kvwarm\(pid.map { " (pid \($0))" } ?? "") owns the state directory (\(path) is locked)"
            case .system(let path, let e):
                "cannot lock \(path): \(String(cString: strerror(e)))"
            }
        }
    }

    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Takes the lock of `directory` and writes this process's pid into the file.
    public static func acquire(directory: String) throws(Failure) -> InstanceLock {
        let path = directory + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(path: path, errno: errno) }
        guard flockRetrying(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            let pid = readPID(fd)
            close(fd)
            throw e == EWOULDBLOCK ? .held(path: path, pid: pid) : .system(path: path, errno: e)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return InstanceLock(path: path, fd: fd)
    }

    /// Adds a `ready` line after the pid: the daemon has sent READY=1 (``isReady(directory:)``).
    public func markReady() {
        let text = Array("\(getpid())\nready\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Whether a running kvwarm holds the lock of `directory` and has marked itself ready. A file
    /// left by a kvwarm that died says `ready` but is not locked.
    public static func isReady(directory: String) -> Bool {
        let fd = open(directory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flockRetrying(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return false
        }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        return String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").contains("ready")
    }

    /// Who holds the lock of `directory`, without taking it.
    public static func holder(directory: String) -> Holder {
        let fd = open(directory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .none }
        defer { close(fd) }
        if flockRetrying(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return .none
        }
        return .process(pid: readPID(fd))
    }

    private static func flockRetrying(_ fd: Int32, _ op: Int32) -> Int32 {
        while true {
            let r = flock(fd, op)
            if r == 0 || errno != EINTR { return r }
        }
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buf[0..<n].filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
    }
}
