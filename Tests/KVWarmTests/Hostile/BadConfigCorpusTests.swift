import Foundation
import KVWarmTestSupport
import Testing

/// Every file in `Tests/Fixtures/bad-configs/` (see its README): `kvwarm check` exits 78 naming
/// the key; as a SIGHUP reload the running config stays in force and the log says why.
@Suite(.serialized) struct HostileBadConfigCorpusTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var text: String
        var expect: String
        var description: String { name }
    }

    static let corpusDir = Hostile.fixtures + "/bad-configs"

    static var cases: [Case] {
        let names = Hostile.files(corpusDir).filter { $0.hasSuffix(".json") }
        return names.map { n in
            let stem = String(n.dropLast(5))
            let text = (try? String(contentsOfFile: corpusDir + "/" + n, encoding: .utf8)) ?? ""
            let expect = ((try? String(contentsOfFile: corpusDir + "/" + stem + ".expect", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return Case(name: stem, text: text, expect: expect)
        }
    }

    /// The scratch directory the placeholders point into.
    static func scratch() throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory("kvbadcfg")
        try dir.write("tpl/a.txt", Hostile.text("TEMPLATE-A"))
        try dir.write("tpl/b.txt", Hostile.text("TEMPLATE-B"))
        try dir.write("empty.key", "")
        try dir.write("two-lines.key", "secret-one\nsecret-two\n")
        return dir
    }

    static func instantiate(_ c: Case, dir: TemporaryDirectory, url: String) -> String {
        c.text.replacingOccurrences(of: "@DIR@", with: dir.path).replacingOccurrences(of: "@URL@", with: url)
    }

    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        for k in ["CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "KVWARM_CONFIG"] { env[k] = nil }
        return env
    }

    @Test func corpusHasAtLeastTwentyCasesEachWithAnExpectation() {
        let cs = Self.cases
        #expect(cs.count >= 20)
        for c in cs { #expect(!c.expect.isEmpty, "\(c.name).expect is missing or empty") }
    }

    @Test func checkExits78NamingTheKey() async throws {
        let dir = try Self.scratch()
        defer { dir.remove() }
        let env = Self.environment
        try await withThrowingTaskGroup(of: (Case, ProcessRunner.Output).self) { group in
            for c in Self.cases {
                let path = try dir.write("cfg/\(c.name).json", Self.instantiate(c, dir: dir, url: "http://127.0.0.1:9"))
                group.addTask {
                    (c, try await ProcessRunner.run(KVWarmProcess.binary, ["check", "--config", path], environment: env))
                }
            }
            for try await (c, out) in group {
                #expect(out.status == 78, "\(c.name): exit \(out.status), stderr: \(out.stderr)")
                #expect(out.stderr.contains(c.expect), "\(c.name): expected \"\(c.expect)\" in: \(out.stderr)")
            }
        }
    }

    @Test func sighupWithEachBadConfigKeepsTheRunningOne() async throws {
        let dir = try Self.scratch()
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        let url = Hostile.url(fake)
        let config = try Hostile.writeConfig(dir, url: url, slotDir: fake.slotSavePath,
                                             templates: ["a": dir.file("tpl/a.txt")])
        let good = try Data(contentsOf: URL(fileURLWithPath: config))
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"],
                                   directory: dir.path)
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(20))

        for c in Self.cases {
            try Self.instantiate(c, dir: dir, url: url).write(toFile: config, atomically: true, encoding: .utf8)
            let mark = kv.notifyMessages.count, recMark = kv.logRecords.count
            kv.signal(SIGHUP)
            let ready = try await kv.wait("READY after reload of \(c.name)", timeout: .seconds(20)) {
                kv.notifyMessages.dropFirst(mark).first { $0.contains("READY=1") }
            }
            #expect(ready.contains("last reload rejected"), "\(c.name): \(ready)")
            #expect(ready.contains("watching 1 template"), "\(c.name): \(ready)")
            let rec = try await kv.awaitRecord(["STAGE": "reload", "OUTCOME": "failed"], after: recMark,
                                               timeout: .seconds(10))
            #expect(rec["REASON"] == "bad_config", "\(c.name): \(rec)")
            #expect(rec["MESSAGE"]?.contains(c.expect) == true, "\(c.name): expected \"\(c.expect)\" in \(rec["MESSAGE"] ?? "-")")
            #expect(kv.process.isRunning, "\(c.name) stopped the daemon")
        }

        // the old config is still in force: template a is watched and re-warms on an edit
        try good.write(to: URL(fileURLWithPath: config))
        let recMark = kv.logRecords.count
        try dir.write("tpl/a.txt", Hostile.text("TEMPLATE-A-EDITED"))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], after: recMark, timeout: .seconds(20))
        #expect(kv.stop() == 0)
    }
}
