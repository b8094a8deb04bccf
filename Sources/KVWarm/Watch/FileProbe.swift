#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The `lstat`/`stat`/`readlink`/`realpath` calls of kvwarm, as small wrappers.
enum FileProbe {
    /// Whether `path` itself (not what it points to) is a symbolic link.
    static func isSymlink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    /// The target of the symbolic link at `path`, as stored; nil if it is not one.
    static func readlink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = libcReadlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `realpath(3)`: `path` with every symbolic link, `.` and `..` resolved by the kernel.
    /// Nil with `errno` set when it fails (`ENOENT`, `ELOOP`, `EACCES`…).
    static func realpath(_ path: String) -> String? {
        guard let p = libcRealpath(path) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The real path of `path` if it is (or resolves to) a directory.
    static func realDirectory(_ path: String) -> String? {
        FileSystem.isDirectory(path) ? realpath(path) : nil
    }
}
