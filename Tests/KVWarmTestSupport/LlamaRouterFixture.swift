import Foundation

/// Starts the provisioned llama-server as a router (`--models-dir` with the test model under
/// several names, each a symlink to the one GGUF) on a free loopback port, with one shared
/// `--slot-save-path`, and tears it down. `LLAMA_CACHE` points at an empty directory so the
/// router lists only these models.
// @unchecked: every stored property is a `let` set in init; `Process` is only signalled and
// queried (isRunning), which Foundation does under its own lock.
public final class LlamaRouterFixture: @unchecked Sendable {
    public let port: Int
    public let slotDir: String
    public let logPath: String
    private let process: Process

    public var backendURL: String { "http://127.0.0.1:\(port)" }

    /// A router serving `models` from `workDir/models` with at most `modelsMax` loaded at once.
    public init(models: [String], modelsMax: Int, workDir: String, slotDir: String, contextSize: Int = 4096,
                parallel: Int = 2) async throws {
        self.slotDir = slotDir
        logPath = workDir + "/router.log"
        port = try LlamaServerFixture.freePort()
        let fm = FileManager.default
        let modelDir = workDir + "/models", cache = workDir + "/hf-cache"
        try fm.createDirectory(atPath: modelDir, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: cache, withIntermediateDirectories: true)
        for m in models where !fm.fileExists(atPath: "\(modelDir)/\(m).gguf") {
            try fm.createSymbolicLink(atPath: "\(modelDir)/\(m).gguf", withDestinationPath: LlamaServerFixture.model)
        }
        var env = ProcessInfo.processInfo.environment
        env["LLAMA_CACHE"] = cache
        // this variable makes a llama-server a router's child: never hand it down
        env["LLAMA_SERVER_ROUTER_PORT"] = nil
        let p = try LlamaServerFixture.launch(LlamaServerFixture.binary, [
            "--models-dir", modelDir, "--models-max", String(modelsMax), "--host", "127.0.0.1", "--port", String(port),
            "--slot-save-path", slotDir, "-c", String(contextSize), "-np", String(parallel), "--swa-full", "-t", "2",
        ], environment: env, logPath: logPath)
        process = p
        do {
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                guard p.isRunning else { throw FixtureError("router exited: \(tail())") }
                if (try? await request("GET", "/models", body: nil))?.0 == 200 { break }
                guard ContinuousClock.now < deadline else { throw FixtureError("router did not answer: \(tail())") }
                try await Task.sleep(for: .milliseconds(200))
            }
        } catch {
            stop()
            throw error
        }
    }

    private func tail() -> String { String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(2000)) }

    public func stop() { process.stopBounded(grace: 2) }

    deinit { stop() }

    /// One HTTP request to the router with curl's command-line tool; status and parsed JSON body.
    public func request(_ method: String, _ path: String, body: [String: Any]?) async throws -> (Int, Any?) {
        try await LlamaServerFixture.curl(method, ["\(backendURL)\(path)"], body: body)
    }

    /// Each model's `status.value` from `GET /models`.
    public func statuses() async throws -> [String: String] {
        let (code, json) = try await request("GET", "/models", body: nil)
        guard code == 200, let data = (json as? [String: Any])?["data"] as? [[String: Any]] else {
            throw FixtureError("GET /models answered \(code)")
        }
        var out: [String: String] = [:]
        for m in data {
            if let id = m["id"] as? String { out[id] = (m["status"] as? [String: Any])?["value"] as? String ?? "?" }
        }
        return out
    }

    /// Polls `GET /models` every 20 ms until `model` shows `value`; returns when it first did.
    @discardableResult
    public func awaitStatus(_ model: String, _ value: String, timeout: Duration = .seconds(60)) async throws -> Date {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await statuses()[model] == value { return Date() }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw FixtureError("model \(model) did not become \(value): \(try await statuses())")
    }

    /// `POST /models/load` or `/models/unload` of `model`.
    public func post(_ action: String, _ model: String) async throws {
        let (code, json) = try await request("POST", "/models/\(action)", body: ["model": model])
        guard code == 200 else { throw FixtureError("\(action) \(model): \(code) \(String(describing: json))") }
    }
}
