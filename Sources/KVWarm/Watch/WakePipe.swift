#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A non-blocking pipe whose read end sits in the reader thread's `poll` set, so another
/// thread can wake it to stop. (Glibc's Swift module does not export `eventfd`.)
struct WakePipe: Sendable {
    let readFD: CInt
    let writeFD: CInt

    init() throws(Errno) {
        var fds: [CInt] = [-1, -1]
        // `pipe2` is not exported either; the flags are set right after (a child spawned in
        // between could inherit the two descriptors, which is harmless).
        _ = try valueOrErrno { pipe(&fds) }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// Makes the read end readable. A full pipe (`EAGAIN`) already is.
    func signal() {
        var byte: UInt8 = 1
        _ = try? valueOrErrno { libcWrite(writeFD, &byte, 1) }
    }

    func close() {
        _ = libcClose(readFD)
        _ = libcClose(writeFD)
    }
}
