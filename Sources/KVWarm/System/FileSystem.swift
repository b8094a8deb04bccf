#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// The file-system calls kvwarm makes outside its stage seams, as thin POSIX wrappers
/// (`stat`, `access`, `open`/`read`, `mkdir`, `opendir`, `unlink`, `rename`, `getcwd`).
/// Paths are used as given; nothing follows `~` or resolves relative paths but the kernel.
enum FileSystem {
    /// Whether something exists at `path` (following symlinks).
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Whether `path` is a directory (following symlinks).
    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether the calling process may read `path` (`access(R_OK)`).
    static func isReadable(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }

    /// The whole content of the file at `path`, or nil when it cannot be opened or read.
    static func contents(_ path: String) -> [UInt8]? {
        try? read(path)
    }

    /// The whole content of the file at `path`.
    static func read(_ path: String) throws(Errno) -> [UInt8] {
        try errnoOnly {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
            return try fd.closeAfter {
                var out: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 64 * 1024)
                while true {
                    let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
                    if n == 0 { return out }
                    out.append(contentsOf: chunk[..<n])
                }
            }
        }
    }

    /// Creates `path` and, with `intermediates`, its missing parents, each with `mode`.
    /// An existing directory is not an error.
    static func createDirectory(_ path: String, intermediates: Bool, mode: mode_t = 0o755) throws(Errno) {
        if isDirectory(path) { return }
        if intermediates {
            let parent = LexicalPath.parent(path)
            if !parent.isEmpty, parent != path, !exists(parent) {
                try createDirectory(parent, intermediates: true, mode: mode)
            }
        }
        if mkdir(path, mode) != 0 {
            let e = Errno(rawValue: errno)
            if e == .fileExists, isDirectory(path) { return }
            throw e
        }
    }

    /// The names in directory `path` without `.` and `..`, unsorted.
    static func list(_ path: String) throws(Errno) -> [String] {
        guard let dir = opendir(path) else { throw Errno(rawValue: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes the file (not directory) at `path`.
    static func remove(_ path: String) throws(Errno) {
        guard unlink(path) == 0 else { throw Errno(rawValue: errno) }
    }

    /// Renames `from` to `to`, replacing `to`.
    static func move(_ from: String, to: String) throws(Errno) {
        guard rename(from, to) == 0 else { throw Errno(rawValue: errno) }
    }

    /// Creates (or truncates) `path` with `mode`, writes `bytes` and closes it.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(Errno) {
        try errnoOnly {
            let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: FilePermissions(rawValue: mode))
            try fd.closeAfter { _ = try fd.writeAll(bytes) }
        }
    }

    /// Runs swift-system calls, whose errors are always `Errno`, with that as the thrown type.
    private static func errnoOnly<T>(_ body: () throws -> T) throws(Errno) -> T {
        do { return try body() } catch let e as Errno { throw e } catch { throw .ioError }
    }

    /// The working directory (`getcwd`), or `/` if it cannot be read.
    static var currentDirectory: String {
        guard let p = getcwd(nil, 0) else { return "/" }
        defer { free(p) }
        return String(cString: p)
    }
}
