import Foundation
import Synchronization

/// Runs the built `kvwarm` binary as systemd would: a `NOTIFY_SOCKET` bound by
/// the test, JSON logs on stderr. Tests await notify messages and log records
/// (events), never fixed sleeps.
public final class KVWarmProcess: Sendable {
    public let process: Process
    public let notifySocketPath: String
    private let notifyFD: Int32
    private let records = LockedBox<[[String: String]]>([])
    private let notifications = LockedBox<[String]>([])
    private let rawLines = LockedBox<[String]>([])

    /// The binary: `$KVWARM_BINARY`, else `.build/debug/kvwarm` in this checkout.
    public static var binary: String {
        if let b = ProcessInfo.processInfo.environment["KVWARM_BINARY"] { return b }
        return repoRoot + "/.build/debug/kvwarm"
    }

    public static var repoRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }

    /// Starts `kvwarm <arguments>` with `environment` added (NOTIFY_SOCKET is set here).
    public init(arguments: [String], environment: [String: String] = [:], directory: String) throws {
        notifySocketPath = directory + "/notify-\(UUID().uuidString.prefix(8)).sock"
        notifyFD = try Self.bindDatagram(notifySocketPath)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notifySocketPath
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        process = p
        try p.run()
        let fd = notifyFD
        let notes = notifications
        Thread {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buf, buf.count, 0)
                if n <= 0 { return }
                let s = String(decoding: buf[0..<n], as: UTF8.self)
                notes.withLock { $0.append(s) }
            }
        }.start()
        let recs = records, raws = rawLines
        Thread {
            let h = err.fileHandleForReading
            var pending = Data()
            while true {
                let chunk = h.availableData
                if chunk.isEmpty { return }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    raws.withLock { $0.append(line) }
                    if let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
                        let flat = o.reduce(into: [String: String]()) { $0[$1.key] = "\($1.value)" }
                        recs.withLock { $0.append(flat) }
                    }
                }
            }
        }.start()
    }

    deinit {
        stop()
        shutdown(notifyFD, Int32(SHUT_RDWR))
        close(notifyFD)
        unlink(notifySocketPath)
    }

    /// Every JSON log record so far.
    public var logRecords: [[String: String]] { records.withLock { $0 } }
    /// Every stderr line so far.
    public var stderrLines: [String] { rawLines.withLock { $0 } }
    /// Every notify datagram so far.
    public var notifyMessages: [String] { notifications.withLock { $0 } }

    /// Waits until `predicate` holds for the state, polling the collected events.
    public func wait<T>(_ what: String, timeout: Duration = .seconds(120),
                        _ predicate: () -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let v = predicate() { return v }
            if !process.isRunning, let v = predicate() { return v }
            if !process.isRunning {
                throw FixtureError("kvwarm exited (\(process.terminationStatus)) before \(what); stderr:\n"
                                   + stderrLines.suffix(30).joined(separator: "\n"))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw FixtureError("timed out waiting for \(what); stderr:\n" + stderrLines.suffix(30).joined(separator: "\n"))
    }

    /// Waits for a notify datagram containing `fragment`; returns it.
    @discardableResult
    public func awaitNotify(_ fragment: String, timeout: Duration = .seconds(180)) async throws -> String {
        try await wait("notify \(fragment)", timeout: timeout) { notifyMessages.first { $0.contains(fragment) } }
    }

    /// Waits for the `index`-th log record (0-based, counting from `after`) matching every field in `fields`.
    @discardableResult
    public func awaitRecord(_ fields: [String: String], after: Int = 0,
                            timeout: Duration = .seconds(120)) async throws -> [String: String] {
        try await wait("log record \(fields)", timeout: timeout) {
            logRecords.dropFirst(after).first { r in fields.allSatisfy { r[$0.key] == $0.value } }
        }
    }

    public func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// SIGTERM and wait (SIGKILL after 10 s); returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func bindDatagram(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw FixtureError("socket path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        guard ok else { close(fd); throw FixtureError("bind \(path): \(errno)") }
        return fd
    }
}
