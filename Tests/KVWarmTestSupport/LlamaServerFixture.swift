import Foundation

/// Starts the provisioned llama-server (built by `.ci/provision`) on a free
/// loopback port, with `--slot-save-path` in a temp dir, and tears it down.
// @unchecked: every stored property is a `let` set in init; `Process` is not marked Sendable but
// is only signalled and queried (isRunning), which Foundation does under its own lock.
public final class LlamaServerFixture: @unchecked Sendable {

    public struct Options: Sendable {
        public var swaFull = true
        public var contextSize = 8192
        public var parallel: Int?
        public var apiKey: String?
        public var unixSocket: String?
        public var extraArgs: [String] = []
        /// Another GGUF path (e.g. a copy of the model, to change the fingerprint).
        public var model: String?
        public init() {}
    }

    public let port: Int
    public let slotDir: String
    public let options: Options
    public let logPath: String
    private let process: Process

    /// The llama-server binary and model from the provisioning cache.
    public static var binary: String {
        let env = ProcessInfo.processInfo.environment
        if let b = env["LLAMA_SERVER"] { return b }
        return cacheDir + "/bin/llama-server"
    }

    public static var model: String {
        ProcessInfo.processInfo.environment["KVWARM_TEST_MODEL"] ?? cacheDir + "/models/gemma-3-270m-q4_k_m.gguf"
    }

    static var cacheDir: String {
        let env = ProcessInfo.processInfo.environment
        return env["KVWARM_TEST_CACHE"] ?? (env["HOME"] ?? "/root") + "/.cache/kvwarm-test"
    }

    /// Whether the provisioned server and model exist.
    public static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: binary) && FileManager.default.fileExists(atPath: model)
    }

    /// The base URL (TCP) or `unix:` URL for kvwarm's config.
    public var backendURL: String {
        options.unixSocket.map { "unix:\($0)" } ?? "http://127.0.0.1:\(port)"
    }

    /// Starts a server and waits until `/health` answers 200.
    public init(slotDir: String, logPath: String, options: Options = Options(), port: Int? = nil) async throws {
        self.slotDir = slotDir
        self.options = options
        self.logPath = logPath
        self.port = try port ?? Self.freePort()
        var args = ["-m", options.model ?? Self.model, "--host", options.unixSocket ?? "127.0.0.1", "--port", String(self.port),
                    "--slot-save-path", slotDir, "-c", String(options.contextSize), "-t", "2"]
        if options.swaFull { args.append("--swa-full") }
        if let np = options.parallel { args += ["-np", String(np)] }
        if let key = options.apiKey { args += ["--api-key", key] }
        args += options.extraArgs
        process = try Self.launch(Self.binary, args, logPath: logPath)
        do {
            try await waitHealthy(timeout: .seconds(120))
        } catch {
            stop()
            throw error
        }
    }

    /// Polls `/health` until 200 (the model loads for a second or two).
    private func waitHealthy(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                let tail = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? ""
                throw FixtureError("llama-server exited: \(tail)")
            }
            if let (status, _) = try? await request("GET", "/health", body: nil), status == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw FixtureError("llama-server did not become healthy within \(timeout)")
    }

    /// Stops the server and waits for it. Children of the test runner inherit a
    /// blocked SIGTERM, so this is SIGTERM with a short grace, then SIGKILL.
    public func stop() { process.stopBounded(grace: 1) }

    /// Kills the server abruptly (a crash).
    public func kill9() { process.stopBounded(grace: 0) }

    deinit { stop() }

    /// One HTTP request with curl's command-line tool; returns status and parsed JSON body.
    public func request(_ method: String, _ path: String, body: [String: Any]?) async throws -> (Int, Any?) {
        var target = ["http://127.0.0.1:\(port)\(path)"]
        if let sock = options.unixSocket { target = ["--unix-socket", sock, "http://localhost\(path)"] }
        return try await Self.curl(method, target, body: body, headers: options.apiKey.map { ["Authorization: Bearer \($0)"] } ?? [])
    }

    /// Starts `binary` with `arguments` (and `environment`, when given), its stdout and stderr
    /// in the file at `logPath`, stdin empty.
    public static func launch(_ binary: String, _ arguments: [String], environment: [String: String]? = nil,
                              logPath: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        if let environment { p.environment = environment }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// One request with curl's command-line tool to `target` (the URL, after any curl options);
    /// the status and the parsed JSON body.
    public static func curl(_ method: String, _ target: [String], body: [String: Any]?,
                            headers: [String] = []) async throws -> (Int, Any?) {
        var args = ["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "--max-time", "600"] + target
        for h in headers { args += ["-H", h] }
        if let body {
            args += ["-H", "Content-Type: application/json", "--data-binary",
                     String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)]
        }
        let out = try await ProcessRunner.run("/usr/bin/curl", args)
        var lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.popLast() ?? "") ?? 0
        return (status, try? JSONSerialization.jsonObject(with: Data(lines.joined(separator: "\n").utf8)))
    }

    /// A client's chat request (`POST /v1/chat/completions`) of `content`; returns (cache_n, prompt tokens).
    public func chat(_ content: String, role: String = "user", system: String? = nil) async throws -> (cached: Int, prompt: Int) {
        var messages: [[String: String]] = []
        if let system { messages.append(["role": "system", "content": system]) }
        messages.append(["role": role, "content": content])
        let (status, json) = try await request("POST", "/v1/chat/completions",
                                               body: ["messages": messages, "max_tokens": 2, "temperature": 0])
        guard status == 200, let o = json as? [String: Any], let t = o["timings"] as? [String: Any],
              let usage = o["usage"] as? [String: Any] else {
            throw FixtureError("chat failed: \(status) \(String(describing: json))")
        }
        return ((t["cache_n"] as? Int) ?? 0, (usage["prompt_tokens"] as? Int) ?? 0)
    }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { throw FixtureError("cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
