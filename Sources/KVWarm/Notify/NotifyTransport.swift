import CSystemd
import Glibc

/// Delivers one service-manager notification (a `KEY=VALUE\n…` state string) as one datagram.
///
/// ``Notifier`` builds the messages; transports only deliver them, so tests can inject a socket path
/// instead of touching the process environment.
public protocol NotifyTransport: Sendable {
    /// Sends `state` as a single datagram.
    /// - Returns: `true` if it was handed to the notification socket.
    func send(_ state: String) -> Bool
}

/// Production transport: libsystemd's `sd_notify(0, state)`, which reads `NOTIFY_SOCKET` from the
/// process environment (and leaves it set, so later notifications still work).
public struct SystemdNotifyTransport: NotifyTransport {
    /// Creates the transport.
    public init() {}

    public func send(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }
}

/// A transport that does nothing; used when not running under a service manager.
public struct DisabledNotifyTransport: NotifyTransport {
    /// Creates the transport.
    public init() {}

    public func send(_ state: String) -> Bool { false }
}

/// Implements the sd_notify datagram protocol directly for an explicit socket address.
///
/// `socketPath` is a filesystem path (`/run/…/notify`) or an abstract address written `@name`, the
/// two forms `NOTIFY_SOCKET` uses. Each send opens a fresh `AF_UNIX`/`SOCK_DGRAM` socket, sends one
/// datagram and closes it, like systemd's self-contained reference implementation.
public struct DatagramNotifyTransport: NotifyTransport {
    /// The address, `/path` or `@abstract`.
    public let socketPath: String

    /// Creates a transport for `socketPath` (`/path` or `@abstract`).
    public init(socketPath: String) { self.socketPath = socketPath }

    public func send(_ state: String) -> Bool {
        guard let (address, length) = Self.address(for: socketPath) else { return false }
        var addr = address
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        let sent = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), sa, length)
                }
            }
        }
        return sent == bytes.count
    }

    /// Builds the `sockaddr_un` for `/path` or `@abstract`.
    ///
    /// Returns `nil` for an empty, relative or too long address (`sun_path` holds 108 bytes: a path
    /// needs room for its NUL, an abstract name uses the leading NUL byte instead of `@`).
    static func address(for path: String) -> (sockaddr_un, socklen_t)? {
        var bytes = Array(path.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else { return nil }
        let abstract = first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        var addr = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count <= (abstract ? capacity : capacity - 1), bytes.count > 1 || !abstract else { return nil }
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            dst.copyBytes(from: bytes)  // the rest stays zero, which NUL-terminates a path
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // Abstract addresses are length-delimited (no trailing NUL); paths include their NUL.
        let length = pathOffset + bytes.count + (abstract ? 0 : 1)
        return (addr, socklen_t(length))
    }
}
