import Glibc
import KVWarmTestSupport
import Testing
@testable import KVWarm

/// A bound AF_UNIX/SOCK_DGRAM socket standing in for systemd's notification socket.
/// The address is built here independently of `DatagramNotifyTransport`.
final class NotifySocket {
    let fd: Int32
    let address: String
    private let directory: TemporaryDirectory?

    /// A socket at `<tempdir>/notify` (`abstract == false`) or at `@kvwarm-test-<pid>-<random>`.
    init(abstract: Bool) throws {
        if abstract {
            directory = nil
            address = "@kvwarm-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        } else {
            let dir = try TemporaryDirectory("kvn")
            directory = dir
            address = dir.file("notify")
        }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if abstract { bytes[0] = 0 }
        try #require(bytes.count < 108)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let len = socklen_t(2 + bytes.count + (abstract ? 0 : 1))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        try #require(rc == 0, "bind failed: errno \(errno)")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next datagram, or `nil` after the 5 s timeout.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// Whether a datagram is waiting (does not block).
    func hasPending() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK)) >= 0
    }

    deinit {
        close(fd)
        directory?.remove()
    }
}

@Suite struct NotifierTests {
    @Test(arguments: [false, true])
    func eachMessageArrivesAsOneExactDatagram(abstract: Bool) throws {
        let socket = try NotifySocket(abstract: abstract)
        let notifier = Notifier(transport: DatagramNotifyTransport(socketPath: socket.address))

        #expect(notifier.ready(status: "watching 3 templates"))
        #expect(socket.receive() == "READY=1\nSTATUS=watching 3 templates")

        #expect(notifier.status("warming 2/3"))
        #expect(socket.receive() == "STATUS=warming 2/3")

        #expect(notifier.extendTimeout(by: .seconds(30), status: "warming 1/3"))
        #expect(socket.receive() == "EXTEND_TIMEOUT_USEC=30000000\nSTATUS=warming 1/3")

        #expect(notifier.extendTimeout(by: .milliseconds(1500)))
        #expect(socket.receive() == "EXTEND_TIMEOUT_USEC=1500000")

        #expect(notifier.stopping(status: "draining"))
        #expect(socket.receive() == "STOPPING=1\nSTATUS=draining")

        #expect(notifier.watchdog())
        #expect(socket.receive() == "WATCHDOG=1")

        #expect(notifier.failed(status: "warm failed: backend refused", errno: 111))
        #expect(socket.receive() == "STATUS=warm failed: backend refused\nERRNO=111")

        #expect(!socket.hasPending())
    }

    @Test(arguments: [false, true])
    func reloadingCarriesMonotonicTimeInTheSameDatagram(abstract: Bool) throws {
        let socket = try NotifySocket(abstract: abstract)
        let notifier = Notifier(transport: DatagramNotifyTransport(socketPath: socket.address))
        let before = monotonicNow()
        #expect(notifier.reloading(status: "reloading"))
        let after = monotonicNow()
        let message = try #require(socket.receive())
        let lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        try #require(lines.count == 3, "\(message)")
        #expect(lines[0] == "RELOADING=1")
        #expect(lines[1].hasPrefix("MONOTONIC_USEC="))
        let usec = try #require(UInt64(lines[1].dropFirst("MONOTONIC_USEC=".count)))
        #expect(usec >= before && usec <= after, "\(before) <= \(usec) <= \(after)")
        #expect(lines[2] == "STATUS=reloading")
        #expect(!socket.hasPending())
    }

    @Test func statusIsMadeSingleLine() throws {
        let socket = try NotifySocket(abstract: false)
        let notifier = Notifier(transport: DatagramNotifyTransport(socketPath: socket.address))
        #expect(notifier.ready(status: "a\nREADY=0\r\nb\tc\u{0}d"))
        #expect(socket.receive() == "READY=1\nSTATUS=a READY=0 b c d")
        #expect(Notifier.singleLine("plain") == "plain")
    }

    private func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    @Test func datagramTransportRejectsBadAddresses() {
        #expect(!DatagramNotifyTransport(socketPath: "").send("READY=1"))
        #expect(!DatagramNotifyTransport(socketPath: "relative/sock").send("READY=1"))
        #expect(!DatagramNotifyTransport(socketPath: "@").send("READY=1"))
        #expect(!DatagramNotifyTransport(socketPath: "/" + String(repeating: "x", count: 107)).send("READY=1"))
        #expect(DatagramNotifyTransport.address(for: "/" + String(repeating: "x", count: 106)) != nil)
        #expect(DatagramNotifyTransport.address(for: "@" + String(repeating: "x", count: 107)) != nil)
        #expect(DatagramNotifyTransport.address(for: "@" + String(repeating: "x", count: 108)) == nil)
        // Nobody listening: the send fails rather than blocking or crashing.
        #expect(!DatagramNotifyTransport(socketPath: "/nonexistent/kvwarm/notify").send("READY=1"))
    }

    @Test func fromEnvironmentPicksTransport() {
        #expect(!Notifier.fromEnvironment([:]).isEnabled)
        #expect(!Notifier.fromEnvironment(["NOTIFY_SOCKET": ""]).isEnabled)
        let n = Notifier.fromEnvironment(["NOTIFY_SOCKET": "/run/systemd/notify"])
        #expect(n.isEnabled)
        #expect(n.transport is SystemdNotifyTransport)
        #expect(!Notifier.disabled.ready(status: "x"))
    }

    @Test func durationsRoundUpToMicroseconds() {
        #expect(Notifier.microseconds(.seconds(90)) == 90_000_000)
        #expect(Notifier.microseconds(.nanoseconds(1)) == 1)
        #expect(Notifier.microseconds(.nanoseconds(1_001)) == 2)
        #expect(Notifier.microseconds(.zero) == 0)
        #expect(Notifier.microseconds(.seconds(-5)) == 0)
    }
}

@Suite struct WatchdogConfigTests {
    @Test func pingIntervalIsHalfOfWatchdogUSec() {
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "20000000"], pid: 42) == .seconds(10))
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "42"], pid: 42) == .seconds(10))
        #expect(WatchdogConfig.timeout(["WATCHDOG_USEC": "3"], pid: 42) == .microseconds(3))
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "3"], pid: 42) == .nanoseconds(1500))
    }

    @Test func disabledCases() {
        #expect(WatchdogConfig.fromEnvironment([:], pid: 42) == nil)
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "0"], pid: 42) == nil)
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "abc"], pid: 42) == nil)
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "43"], pid: 42) == nil)
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "x"], pid: 42) == nil)
        #expect(WatchdogConfig.fromEnvironment(["WATCHDOG_PID": "42"], pid: 42) == nil)
    }
}
