import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// Secrets and confinement: the API key never leaks, includes stay inside include_roots, KV file
/// names stay inside the slot directory, state_dir is 0700, the docs warn that KV files are
/// plaintext transcripts.
@Suite struct HostileSecurityTests {
    static let key = "sk-KVWARM-SECRET-8f3a1c"
    static let wrongKey = "sk-WRONG-SECRET-77e2d0"

    @Test func apiKeyNeverLeaksAndStateDirIsPrivate() async throws {
        let dir = try TemporaryDirectory("kvsec")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start(apiKey: Self.key)
        defer { fake.stop() }
        let keyFile = try dir.write("secret/api.key", Self.key + "\n")
        chmod(keyFile, 0o600)
        try dir.write("tpl/a.txt", Hostile.text("SECURE"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("tpl/etc"), withDestinationPath: "/etc")
        try dir.write("tpl/b.txt", "Users: <{etc/passwd}> and <{/etc/passwd}> <{message}>")
        let templates: [String: Any] = ["a": dir.file("tpl/a.txt"), "b": dir.file("tpl/b.txt"),
                                        "../../../etc/evil": dir.file("tpl/a.txt")]
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: templates,
                                             backend: ["api_key_file": keyFile])
        #expect(!FileManager.default.fileExists(atPath: dir.file("state")))
        let kv = try Hostile.run(config, dir)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        #expect(ready.contains("(1 failed)"), "\(ready)")  // b: include outside include_roots
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(10))
        let b = try await kv.awaitRecord(["STAGE": "hash", "TEMPLATE": "b", "OUTCOME": "failed"], timeout: .seconds(10))
        #expect(b["REASON"] == "include_outside_roots")

        // state_dir created 0700, state.json 0600
        var st = stat()
        #expect(stat(dir.file("state"), &st) == 0 && st.st_mode & 0o777 == 0o700, "mode \(String(st.st_mode & 0o777, radix: 8))")
        #expect(stat(dir.file("state/state.json"), &st) == 0 && st.st_mode & 0o077 == 0)

        // a wrong key (SIGHUP re-reads the file) and a server that goes away produce error messages
        try (Self.wrongKey + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        var mark = kv.notifyMessages.count
        kv.signal(SIGHUP)
        _ = try await kv.wait("READY after reload", timeout: .seconds(20)) { kv.notifyMessages.dropFirst(mark).first { $0.contains("READY=1") } }
        try dir.write("tpl/a.txt", Hostile.text("SECURE-EDITED"))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "REASON": "unauthorized"], timeout: .seconds(20))
        try (Self.key + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        mark = kv.notifyMessages.count
        kv.signal(SIGHUP)
        _ = try await kv.wait("READY after reload", timeout: .seconds(20)) { kv.notifyMessages.dropFirst(mark).first { $0.contains("READY=1") } }

        // the CLI: status (text, JSON), check, render, warm; once with the right key, once with the wrong one
        var outputs: [String] = []
        for args in [["status"], ["status", "--json"], ["check"], ["render", "a"], ["render", "b"], ["warm", "a"]] {
            let o = try await ProcessRunner.run(KVWarmProcess.binary, args + ["--config", config])
            outputs += [o.stdout, o.stderr]
        }
        let render = try await ProcessRunner.run(KVWarmProcess.binary, ["render", "b", "--config", config])
        #expect(!(render.stdout + render.stderr).contains("root:x:0:0"), "render read /etc/passwd")
        try (Self.wrongKey + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        for args in [["status"], ["status", "--json"], ["warm", "a"]] {
            let o = try await ProcessRunner.run(KVWarmProcess.binary, args + ["--config", config])
            outputs += [o.stdout, o.stderr]
        }
        fake.stop()
        for args in [["status"], ["warm", "a"]] {
            let o = try await ProcessRunner.run(KVWarmProcess.binary, args + ["--config", config])
            outputs += [o.stdout, o.stderr]
        }
        #expect(kv.stop() == 0)

        let everything = [kv.stderrLines.joined(separator: "\n"), kv.notifyMessages.joined(separator: "\n"),
                          (try? String(contentsOfFile: dir.file("state/state.json"), encoding: .utf8)) ?? ""] + outputs
        for (i, text) in everything.enumerated() {
            #expect(!text.contains(Self.key), "API key in output \(i): \(text.prefix(400))")
            #expect(!text.contains(Self.wrongKey), "wrong API key in output \(i)")
            #expect(!text.contains("root:x:0:0"), "/etc/passwd content in output \(i)")
        }
        #expect(kv.stderrLines.count > 20)  // debug level was on

        // KV file names stay in the slot directory, in kvwarm's alphabet
        for f in Hostile.files(fake.slotSavePath) { #expect(SlotFileNaming.isKVWarmFile(f), "\(f)") }
        #expect(SlotFileNaming.safeName("../../../etc/evil") == "_________etc_evil")
        #expect(!FileManager.default.fileExists(atPath: "/etc/evil.bin"))
    }

    @Test func docsSayKVFilesArePlaintextTranscripts() throws {
        let ops = try String(contentsOfFile: KVWarmProcess.repoRoot + "/docs/operations.md", encoding: .utf8)
        #expect(ops.contains("KV files are plaintext"))
        #expect(ops.lowercased().contains("transcript"))
    }
}
