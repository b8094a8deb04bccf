#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// C library calls under names no Swift member shadows. Inside a type with a method called
// `read`, `close`, `readlink`…, an unqualified call finds the method; these free functions
// resolve to the C library's function from whichever module (Glibc or Musl) was imported.

/// `read(2)`.
func libcRead(_ fd: CInt, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

/// `write(2)`.
func libcWrite(_ fd: CInt, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// `close(2)`.
func libcClose(_ fd: CInt) -> CInt {
    close(fd)
}

/// `poll(2)`.
func libcPoll(_ fds: UnsafeMutablePointer<pollfd>?, _ count: Int, _ timeoutMilliseconds: Int32) -> CInt {
    poll(fds, nfds_t(count), timeoutMilliseconds)
}

/// `readlink(2)`.
func libcReadlink(_ path: String, _ buffer: UnsafeMutablePointer<CChar>, _ size: Int) -> Int {
    readlink(path, buffer, size)
}

/// `realpath(3)` with a buffer it allocates; the caller frees the result.
func libcRealpath(_ path: String) -> UnsafeMutablePointer<CChar>? {
    realpath(path, nil)
}
