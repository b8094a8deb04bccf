import Foundation
import KVWarm
import KVWarmTestSupport

/// Shared pieces of the hostile-world tests (issue 5): the fake backend, configs, request counting.
enum Hostile {
    static let fixtures = KVWarmProcess.repoRoot + "/Tests/Fixtures"

    /// A prompt long enough to be worth warming (~`words` tokens), starting with a unique `marker`.
    static func text(_ marker: String, words: Int = 80) -> String {
        marker + " " + (0..<words).map { "w\($0 % 17)" }.joined(separator: " ") + "\n<{message}>"
    }

    /// Writes `config.json` in `dir`: `templates` maps names to paths (or objects), `extra` adds/overrides top-level keys.
    @discardableResult
    static func writeConfig(_ dir: TemporaryDirectory, url: String, slotDir: String?, templates: [String: Any],
                            backend: [String: Any] = [:], extra: [String: Any] = [:],
                            name: String = "config.json") throws -> String {
        var b: [String: Any] = ["url": url, "timeout_seconds": 10, "check_interval_seconds": 1]
        if let slotDir { b["slot_save_dir"] = slotDir }
        for (k, v) in backend { b[k] = v }
        var cfg: [String: Any] = [
            "backend": b, "state_dir": dir.file("state"), "templates": templates,
            "startup": ["backend_wait_seconds": 5], "debounce_ms": 50, "max_wait_ms": 500,
        ]
        for (k, v) in extra { cfg[k] = v }
        let path = dir.file(name)
        try JSONSerialization.data(withJSONObject: cfg, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func url(_ fake: FakeLlamaServerProcess) -> String { "http://127.0.0.1:\(fake.port!)" }

    static func run(_ config: String, _ dir: TemporaryDirectory, env: [String: String] = [:]) throws -> KVWarmProcess {
        try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json", "--log-level", "debug"],
                          environment: env, directory: dir.path)
    }

    /// The request body as text (for finding a template's marker in it).
    static func bodyText(_ r: [String: Any]) -> String {
        if let b = r["body"], JSONSerialization.isValidJSONObject(b),
           let d = try? JSONSerialization.data(withJSONObject: b) { return String(decoding: d, as: UTF8.self) }
        return (r["raw_body"] as? String) ?? ""
    }

    /// Completion requests (prefill or probe) whose prompt carries `marker`.
    static func completions(_ reqs: [[String: Any]], marker: String) -> [[String: Any]] {
        reqs.filter { ($0["route"] as? String) == "/completion" && bodyText($0).contains(marker) }
    }

    /// Records of `kv` matching every field.
    static func records(_ kv: KVWarmProcess, _ fields: [String: String]) -> [[String: String]] {
        kv.logRecords.filter { r in fields.allSatisfy { r[$0.key] == $0.value } }
    }

    /// Largest number of requests in any `window`-second window.
    static func maxInWindow(_ reqs: [[String: Any]], window: Double) -> Int {
        let ts = reqs.compactMap { $0["t"] as? Double }.sorted()
        var best = 0, lo = 0
        for hi in ts.indices {
            while ts[hi] - ts[lo] > window { lo += 1 }
            best = max(best, hi - lo + 1)
        }
        return best
    }

    /// Polls `predicate` (async) until true or `timeout`.
    static func eventually(_ what: String, timeout: Duration = .seconds(30),
                           _ predicate: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await predicate() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FixtureError("timed out: \(what)")
    }

    static func json(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func files(_ dir: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? []
    }
}

extension FakeLlamaServerProcess {
    /// The request log from entry `since` on (control requests excluded).
    func requests(since: Int) async throws -> [[String: Any]] {
        let r = try await transport().send(HTTPRequest(method: "GET", path: "/__requests?since=\(since)", timeout: .seconds(10)))
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
    }
}
