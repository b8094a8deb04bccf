import Foundation
import KVWarmTestSupport
import Testing

/// One kvwarm per state directory, `status` telling whether it runs, and two kvwarms sharing a
/// slot directory without deleting each other's KV files (the binary against the fake server).
@Suite(.serialized) struct InstanceTests {
    typealias D = DaemonLifecycleTests

    static func status(_ config: String) async throws -> (Int32, [String: Any]) {
        let o = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", config, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any] ?? [:]
        return (o.status, json)
    }

    static func states(_ json: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for t in json["templates"] as? [[String: Any]] ?? [] { out[t["name"] as? String ?? ""] = t["state"] as? String }
        return out
    }

    @Test func aSecondInstanceAndAOneShotWarmAreRefusedAndStatusKnowsWhoRuns() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fake, port) = try D.startFake(["--slot-save-path", dir.file("slots")], dir: dir)
        defer { fake.stopBounded() }
        let config = try D.writeConfig(dir, port: port, templates: ["t": String(repeating: "Steady words. ", count: 30) + "<{message}>"])
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))

        let (code, json) = try await Self.status(config)
        #expect(code == 0, "running and all warm")
        let daemon = json["daemon"] as? [String: Any]
        #expect(daemon?["running"] as? Bool == true)
        #expect(daemon?["pid"] as? Int == Int(kv.process.processIdentifier))
        #expect(Self.states(json) == ["t": "warm"])
        // the JSON is for scripts: plain paths, whole milliseconds, one name per figure
        let raw = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", config, "--json"]).stdout
        #expect(!raw.contains(#"\/"#), "slashes are not escaped: \(raw)")
        let row = try #require((json["templates"] as? [[String: Any]])?.first)
        #expect(row["warm_ms"] is Int && !(raw.split(separator: "\n").first { $0.contains("warm_ms") } ?? "").contains("."))
        #expect(Set(row.keys).isSuperset(of: ["prompt_tokens", "processed_tokens", "cached_tokens"]))
        #expect(row["tokens"] == nil && row["prompt_n"] == nil && row["cache_n"] == nil)
        #expect(row["backend_match"] as? String == "same")

        let second = try await ProcessRunner.run(KVWarmProcess.binary, ["run", "--config", config, "--log-format", "text"])
        #expect(second.status == 75, "\(second.stderr)")
        #expect(second.stderr.contains("another kvwarm (pid \(kv.process.processIdentifier))"), "\(second.stderr)")
        let warm = try await ProcessRunner.run(KVWarmProcess.binary, ["warm", "--config", config])
        #expect(warm.status == 75, "\(warm.stderr)")
        #expect(warm.stderr.contains("running daemon"), "\(warm.stderr)")
        #expect(kv.process.isRunning, "the first instance is untouched")

        #expect(kv.stop() == 0)
        try "Changed while nobody watched. <{message}>".write(toFile: dir.file("tpl/t.txt"), atomically: true, encoding: .utf8)
        let (after, afterJSON) = try await Self.status(config)
        #expect(after == 3, "not running")
        #expect((afterJSON["daemon"] as? [String: Any])?["running"] as? Bool == false)
        #expect(Self.states(afterJSON) == ["t": "pending"], "the warmed digest is not the file's")
        fake.stopBounded()
        let (_, down) = try await Self.status(config)
        let downRow = (down["templates"] as? [[String: Any]])?.first
        #expect(downRow?["backend_match"] as? String == "unknown", "backend down: cannot tell, and says so")

        let missing = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", dir.file("nope.json")])
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("pass --config FILE or set KVWARM_CONFIG"), "\(missing.stderr)")
    }

    @Test func theReadinessProbeSaysReadyOnlyAfterTheStartupWarmOfARunningDaemon() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // ~20 ms per token: the startup warm of ~150 tokens takes ~3 s, time to ask during it
        let (fake, port) = try D.startFake(["--slot-save-path", dir.file("slots"), "--prefill-ms-per-token", "20"], dir: dir)
        defer { fake.stopBounded() }
        let config = try D.writeConfig(dir, port: port, templates: [
            "t": String(repeating: "Steady words for a slow warm. ", count: 25) + "<{message}>"])
        func probe() async throws -> (Int32, String) {
            let o = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", config, "--ready"])
            return (o.status, o.stdout)
        }
        let (none, noneOut) = try await probe()
        #expect(none == 1 && noneOut.contains("no kvwarm runs"), "\(noneOut)")
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        try await kv.awaitRecord(["STAGE": "hash", "TEMPLATE": "t"], after: 0, timeout: .seconds(30))
        let (during, duringOut) = try await probe()
        #expect(during == 1 && duringOut.contains("has not finished"), "\(duringOut)")
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        let (after, afterOut) = try await probe()
        #expect(after == 0 && afterOut.hasPrefix("ready: 1 template warm"), "\(afterOut)")
        #expect(kv.stop() == 0)
        let (stopped, stoppedOut) = try await probe()
        #expect(stopped == 1 && stoppedOut.contains("no kvwarm runs"), "a stopped daemon's file says ready but is not locked: \(stoppedOut)")
    }

    @Test func twoInstancesSharingASlotDirectoryKeepEachOthersKVFiles() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fake, port) = try D.startFake(["--slot-save-path", dir.file("slots")], dir: dir)
        defer { fake.stopBounded() }
        let text = String(repeating: "Steady words. ", count: 30) + "<{message}>"
        let first = try D.writeConfig(dir, port: port, templates: ["alpha": text])
        let a = try KVWarmProcess(arguments: ["run", "--config", first, "--log-format", "json"], directory: dir.path)
        try await a.awaitNotify("READY=1", timeout: .seconds(60))
        #expect(a.stop() == 0, "\(a.stderrLines.suffix(8))")
        let alphaFiles = try FileManager.default.contentsOfDirectory(atPath: dir.file("slots")).filter { $0.hasPrefix("alpha-") }
        #expect(alphaFiles.count == 1)

        // another config, state directory and template, the same slot directory
        let other = try TemporaryDirectory()
        defer { other.remove() }
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: first))) as! [String: Any]
        cfg["state_dir"] = other.file("state")
        cfg["templates"] = ["beta": try other.write("tpl/beta.txt", "Other words. " + text)]
        let second = other.file("config.json")
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: second))
        let b = try KVWarmProcess(arguments: ["run", "--config", second, "--log-format", "json"], directory: other.path)
        try await b.awaitNotify("READY=1", timeout: .seconds(60))
        #expect(b.stop() == 0)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.file("slots"))
        #expect(left.filter { $0.hasPrefix("alpha-") } == alphaFiles, "the other instance swept alpha's KV file: \(left)")
        #expect(left.contains { $0.hasPrefix("beta-") })
        #expect(!b.logRecords.contains { ($0["MESSAGE"] ?? "").contains("orphaned") })
    }
}
