import Foundation
import KVWarmTestSupport
import Testing

/// The daemon's metrics file, read by the real Prometheus text parser (PyPI prometheus-client,
/// in the test venv), against the fake server.
@Suite(.serialized, .enabled(if: OpenAIAgentClient.isAvailable, "run .ci/provision first (python venv)"))
struct MetricsFileTests {
    typealias D = DaemonLifecycleTests

    /// The samples of `path` as `name{labels} value` lines, parsed by prometheus_client.
    static func parse(_ path: String) async throws -> [String: Double] {
        let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
            for s in fam.samples:
                key = s.name + "{" + ",".join("%s=%s" % kv for kv in sorted(s.labels.items())) + "}"
                out[key] = s.value
        print(json.dumps(out))
        """
        let r = try await ProcessRunner.run(OpenAIAgentClient.python, ["-c", script, path])
        guard r.status == 0 else { throw FixtureError("prometheus parser failed: \(r.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Double] ?? [:]
    }

    /// Waits until the text of `path` contains `line` (the file is rewritten after each change;
    /// checked in process, cheaply), then parses it with prometheus_client once.
    static func poll(_ path: String, _ what: String, containing line: String,
                     timeout: Duration = .seconds(15)) async throws -> [String: Double] {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < deadline {
            last = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if last.split(separator: "\n").contains(Substring(line)) { return try await parse(path) }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FixtureError("timed out waiting for \(what) (\(line)); last file:\n\(last)")
    }

    @Test func afterReadyAndAfterAnEditTheFileParsesAndCounts() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fake, port) = try D.startFake(["--slot-save-path", dir.file("slots")], dir: dir)
        defer { fake.stopBounded() }
        let config = try D.writeConfig(dir, port: port, templates: ["t": String(repeating: "Steady words. ", count: 30) + "<{message}>"])
        // add metrics_file to the written config
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config))) as! [String: Any]
        try FileManager.default.createDirectory(atPath: dir.file("textfile"), withIntermediateDirectories: true)
        let prom = dir.file("textfile/kvwarm.prom")
        cfg["metrics_file"] = prom
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: config))

        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        func k(_ name: String, _ extra: [String: String] = [:]) -> String {
            let all = ["backend": "default", "model": "", "template": "t"].merging(extra) { $1 }
            return name + "{" + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
        }
        let prefillOK = k("kvwarm_warms_total", ["mode": "prefill", "outcome": "ok"])
        let sample = #"kvwarm_warms_total{backend="default",model="",template="t",mode="prefill",outcome="ok"}"#
        var m = try await Self.poll(prom, "metrics after the startup warm", containing: sample + " 1")
        #expect(m[prefillOK] == 1, "the parser reads the same sample")
        #expect(m[k("kvwarm_template_state", ["state": "warm"])] == 1)
        #expect(m[k("kvwarm_template_state", ["state": "never"])] == 0)
        #expect((m[k("kvwarm_last_warm_prompt_tokens")] ?? 0) > 50)
        #expect((m[k("kvwarm_last_warm_timestamp_seconds")] ?? 0) > Date().timeIntervalSince1970 - 120)
        let mode = try FileManager.default.attributesOfItem(atPath: prom)[.posixPermissions] as? Int
        #expect(mode == 0o644, "readable by the collector's user")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("textfile")) == ["kvwarm.prom"],
                "no temporary file left behind")

        // an edit: one more warm, counted once it is done
        try "Other words entirely. <{message}>".write(toFile: dir.file("tpl/t.txt"), atomically: true, encoding: .utf8)
        m = try await Self.poll(prom, "metrics after the edit", containing: sample + " 2")
        #expect(m[prefillOK] == 2)
        #expect(m[k("kvwarm_template_state", ["state": "warm"])] == 1)
        #expect(kv.stop() == 0)
    }
}
