import Foundation
import KVWarm

#if canImport(Glibc)
import Glibc
#endif

/// `Tests/Fixtures/fake_llama_server.py` running as a child process.
///
/// Start it with ``start(apiKey:unixSocket:arguments:)``; stop it with ``stop()``
/// (safe to call twice; use `defer`). The control API is reached without the API key.
// @unchecked: every stored property is a `let` set in init; `Process` itself is not marked
// Sendable but is only signalled and queried (isRunning), which Foundation does under its own lock.
public final class FakeLlamaServerProcess: @unchecked Sendable {
    public struct StartFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The repository root, found from this file's location.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/KVWarmTestSupport/<file>
        return url.path
    }()

    public static var script: String { repositoryRoot + "/Tests/Fixtures/fake_llama_server.py" }

    public let process: Process
    /// Scratch directory: `slots/` is the server's --slot-save-path, `stderr.log` its log.
    public let directory: TemporaryDirectory
    public let address: BackendAddress
    public let port: Int?
    public var slotSavePath: String { directory.file("slots") }

    private init(process: Process, directory: TemporaryDirectory, address: BackendAddress, port: Int?) {
        self.process = process
        self.directory = directory
        self.address = address
        self.port = port
    }

    /// Starts the fake and waits for its `LISTENING` line.
    public static func start(apiKey: String? = nil, unixSocket: Bool = false,
                             arguments: [String] = []) async throws -> FakeLlamaServerProcess {
        let dir = try TemporaryDirectory("kvfake")
        try FileManager.default.createDirectory(atPath: dir.file("slots"), withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var args = ["python3", script, "--slot-save-path", dir.file("slots")]
        if unixSocket { args += ["--unix", dir.file("s.sock")] } else { args += ["--port", "0"] }
        if let apiKey { args += ["--api-key", apiKey] }
        p.arguments = args + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardInput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: dir.file("stderr.log"), contents: nil)
        p.standardError = FileHandle(forWritingAtPath: dir.file("stderr.log"))
        do { try p.run() } catch { dir.remove(); throw error }

        // read the first line on a thread of its own: never block the cooperative pool
        let readFD = out.fileHandleForReading.fileDescriptor
        let line: String? = await withCheckedContinuation { cont in
            let t = Thread {
                var bytes: [UInt8] = []
                var c: UInt8 = 0
                while read(readFD, &c, 1) == 1 {
                    if c == 0x0A { break }
                    bytes.append(c)
                }
                cont.resume(returning: bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
            }
            t.start()
        }
        guard let line, line.hasPrefix("LISTENING ") else {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let log = (try? String(contentsOfFile: dir.file("stderr.log"), encoding: .utf8)) ?? ""
            dir.remove()
            throw StartFailure(description: "fake llama-server did not start: \(line ?? "<eof>")\n\(log)")
        }
        let where_ = String(line.dropFirst("LISTENING ".count))
        if unixSocket {
            return FakeLlamaServerProcess(process: p, directory: dir, address: .unixSocket(path: where_), port: nil)
        }
        guard let port = Int(where_) else {
            kill(p.processIdentifier, SIGKILL)
            throw StartFailure(description: "bad LISTENING line: \(line)")
        }
        return FakeLlamaServerProcess(process: p, directory: dir, address: .http(baseURL: "http://127.0.0.1:\(port)"),
                                      port: port)
    }

    /// Kills the server and removes its directory.
    ///
    /// SIGKILL, not SIGTERM: a child spawned by `Process` inherits the spawning
    /// thread's signal mask, and in the test runner SIGTERM is blocked there, so
    /// the fake would never see a SIGTERM.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        directory.remove()
    }

    /// A transport to the fake with `apiKey`.
    public func transport(apiKey: String? = nil) -> CurlTransport { CurlTransport(address: address, apiKey: apiKey) }

    /// A client to the fake.
    public func client(apiKey: String? = nil, timeout: Duration = .seconds(2)) -> LlamaClient {
        LlamaClient(transport: transport(apiKey: apiKey), timeout: timeout)
    }

    private func controlCall(_ method: String, _ path: String, _ body: Any? = nil) async throws -> Any {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let r = try await transport().send(HTTPRequest(method: method, path: path, body: data.map(Array.init),
                                                       timeout: .seconds(5)))
        guard r.status == 200 else {
            throw StartFailure(description: "\(method) \(path): \(r.status) \(String(decoding: r.body, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: Data(r.body))
    }

    /// Replaces the active faults, e.g. `["status": ["status": 500]]`.
    public func setFaults(_ faults: [String: Any]) async throws {
        _ = try await controlCall("POST", "/__control", ["faults": faults])
    }

    /// The fake's request log (control requests excluded).
    public func requests(path: String? = nil) async throws -> [[String: Any]] {
        var p = "/__requests"
        if let path { p += "?path=" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path) }
        return (try await controlCall("GET", p) as? [[String: Any]]) ?? []
    }

    /// Waits (polling the fake's log) until a request to `path` has arrived, up to `failsafe`.
    public func waitForRequest(path: String, failsafe: Duration = .seconds(30)) async throws -> Bool {
        let deadline = ContinuousClock.now + failsafe
        while ContinuousClock.now < deadline {
            if try await !requests(path: path).isEmpty { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
