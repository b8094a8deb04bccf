import Foundation

/// The real `openai` Python client (installed by `.ci/provision` into the cache's venv) sending
/// chat requests built from a request body, via `Tests/Fixtures/openai_agent_client.py`.
public enum OpenAIAgentClient {
    /// What llama-server reported for one request.
    public struct Reuse: Sendable, CustomStringConvertible {
        public var message: String
        /// `timings.cache_n`: prompt tokens taken from the KV cache.
        public var cached: Int
        /// `timings.prompt_n`: prompt tokens computed.
        public var processed: Int
        /// The share of the request's prompt that came from the cache.
        public var ratio: Double { cached + processed == 0 ? 0 : Double(cached) / Double(cached + processed) }
        public var description: String { "\(cached)/\(cached + processed) (\(Int((ratio * 100).rounded())) %)" }
    }

    /// `$KVWARM_TEST_PYTHON`, else the venv in the provisioning cache.
    public static var python: String {
        ProcessInfo.processInfo.environment["KVWARM_TEST_PYTHON"] ?? LlamaServerFixture.cacheDir + "/venv/bin/python"
    }

    public static var script: String { FakeLlamaServerProcess.repositoryRoot + "/Tests/Fixtures/openai_agent_client.py" }

    /// Whether the venv with the client exists.
    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: python) }

    /// Sends one new conversation per message, built from the body at `request` (its
    /// `<{message}>` replaced), and returns the server's figures in order.
    public static func send(baseURL: String, request: String, messages: [String]) async throws -> [Reuse] {
        let args = [script, "--base-url", baseURL, "--request", request] + messages.flatMap { ["--message", $0] }
        let out = try await ProcessRunner.run(python, args)
        guard out.status == 0 else { throw FixtureError("openai client failed (\(out.status)): \(out.stderr)") }
        return try out.stdout.split(separator: "\n").map { line in
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let c = o["cache_n"] as? Int, let p = o["prompt_n"] as? Int else {
                throw FixtureError("unexpected client output: \(line)")
            }
            return Reuse(message: o["message"] as? String ?? "", cached: c, processed: p)
        }
    }
}
