/// One record read from an inotify descriptor.
struct InotifyEvent: Sendable, Equatable, CustomStringConvertible {
    /// Watch descriptor; -1 for `IN_Q_OVERFLOW`.
    var wd: Int32
    var mask: UInt32
    /// Pairs `IN_MOVED_FROM` with `IN_MOVED_TO`; 0 otherwise.
    var cookie: UInt32
    /// The entry name inside the watched directory, without NUL padding; empty for events on the directory itself.
    var name: String

    init(wd: Int32, mask: UInt32, cookie: UInt32 = 0, name: String = "") {
        self.wd = wd
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }

    func has(_ bit: UInt32) -> Bool { mask & bit != 0 }

    var description: String {
        "wd=\(wd) mask=\(InotifyMask.describe(mask)) cookie=\(cookie) name=\(name.debugDescription)"
    }
}

/// Parses the bytes of one `read()` of an inotify descriptor.
///
/// Layout of a record (`struct inotify_event`, native byte order): `int32 wd`, `uint32 mask`,
/// `uint32 cookie`, `uint32 len`, then `len` bytes of NUL-padded name at offset 16.
enum InotifyEventParser {
    /// Size of the fixed part of a record.
    static let headerSize = 16

    /// The events in `buffer`, in order. A truncated record at the end (which the kernel never
    /// produces) is dropped.
    static func parse(_ buffer: UnsafeRawBufferPointer) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        var offset = 0
        while offset + headerSize <= buffer.count {
            let wd = buffer.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let len = Int(buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameStart = offset + headerSize
            guard nameStart + len <= buffer.count else { break }
            let nameBytes = UnsafeRawBufferPointer(rebasing: buffer[nameStart..<(nameStart + len)])
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            events.append(InotifyEvent(wd: wd, mask: mask, cookie: cookie, name: name))
            offset = nameStart + len
        }
        return events
    }

    /// Convenience for byte arrays.
    static func parse(_ bytes: [UInt8]) -> [InotifyEvent] {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Encodes events the way the kernel does (names NUL-padded to a multiple of 4 bytes,
    /// at least one NUL). Used by tests and the fake syscalls.
    static func encode(_ events: [InotifyEvent], padding: Int = 4) -> [UInt8] {
        var out: [UInt8] = []
        for e in events {
            var name = Array(e.name.utf8)
            if !name.isEmpty {
                name.append(0)
                while name.count % padding != 0 { name.append(0) }
            }
            withUnsafeBytes(of: e.wd) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: e.mask) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: e.cookie) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(name.count)) { out.append(contentsOf: $0) }
            out.append(contentsOf: name)
        }
        return out
    }
}
