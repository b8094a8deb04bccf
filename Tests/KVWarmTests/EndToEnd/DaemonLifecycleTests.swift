import Foundation
import KVWarmTestSupport
import Testing

/// The built `kvwarm` binary against the fault-injecting fake llama-server:
/// lifecycle paths the real server will not produce on demand.
@Suite(.serialized) struct DaemonLifecycleTests {
    /// Starts `Tests/Fixtures/fake_llama_server.py` and returns (process, port).
    static func startFake(_ args: [String], dir: TemporaryDirectory) throws -> (Process, Int) {
        try FileManager.default.createDirectory(atPath: dir.file("slots"), withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", KVWarmProcess.repoRoot + "/Tests/Fixtures/fake_llama_server.py", "--port", "0"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        var line = Data()
        while !line.contains(0x0A) {
            let c = out.fileHandleForReading.availableData
            if c.isEmpty { break }
            line.append(c)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("LISTENING "), let port = Int(text.dropFirst(10).prefix { $0.isNumber }) else {
            p.terminate()
            throw FixtureError("fake server did not start: \(text)")
        }
        return (p, port)
    }

    static func writeConfig(_ dir: TemporaryDirectory, port: Int, templates: [String: String],
                            startup: [String: Any] = ["backend_wait_seconds": 5]) throws -> String {
        var t: [String: Any] = [:]
        for (name, text) in templates { t[name] = try dir.write("tpl/\(name).txt", text) }
        let cfg: [String: Any] = [
            "backend": ["url": "http://127.0.0.1:\(port)", "slot_save_dir": dir.file("slots"), "timeout_seconds": 10],
            "state_dir": dir.file("state"), "templates": t, "startup": startup, "debounce_ms": 50,
        ]
        try FileManager.default.createDirectory(atPath: dir.file("slots"), withIntermediateDirectories: true)
        let path = dir.file("config.json")
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func badConfigExits78NamingTheKey() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try dir.write("bad.json", #"{"backend": {"url": "http://127.0.0.1:1"}, "templates": {"a": "/tmp/a.txt"}, "debounce": 5}"#)
        for args in [["check"], ["run", "--log-format", "text"]] {
            let cmd = args[0]
            let out = try await ProcessRunner.run(KVWarmProcess.binary, args + ["--config", path])
            #expect(out.status == 78, "\(cmd): \(out.stderr)")
            #expect(out.stderr.contains("debounce: unknown key"), "\(cmd): \(out.stderr)")
        }
        let syntax = try dir.write("syntax.json", "{\n  \"backend\": {\n    \"url\": \"x\",,\n  }\n}")
        let out = try await ProcessRunner.run(KVWarmProcess.binary, ["check", "--config", syntax])
        #expect(out.status == 78)
        #expect(out.stderr.contains("syntax.json:3:"), "\(out.stderr)")
    }

    @Test func readyAfterWarmThenReloadAddsATemplate() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // ~5 ms per token: each warm takes about 2 s, far longer than noticing READY takes
        let (fake, port) = try Self.startFake(["--slot-save-path", dir.file("slots"), "--prefill-ms-per-token", "5"], dir: dir)
        defer { fake.stopBounded() }
        try FileManager.default.createDirectory(atPath: dir.file("slots"), withIntermediateDirectories: true)
        let text = String(repeating: "Review the code and explain each finding. ", count: 40) + "<{message}>"
        let config = try Self.writeConfig(dir, port: port, templates: ["a": text])
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        // READY came after the warm: when it arrives, the server has already answered a's save
        #expect(try await Self.answeredSaves(port).contains("a-"), "READY before the startup warm was saved")
        #expect(ready.contains("STATUS=watching 1 template (0 failed)"))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(10))

        // add a template to the config, then SIGHUP
        _ = try Self.writeConfig(dir, port: port, templates: ["a": text, "b": "Another long prompt. " + text])
        let mark = kv.notifyMessages.count
        kv.signal(SIGHUP)
        let reloading = try await kv.wait("RELOADING", timeout: .seconds(30)) {
            kv.notifyMessages.dropFirst(mark).first { $0.contains("RELOADING=1") }
        }
        #expect(reloading.contains("MONOTONIC_USEC="))
        let readyAgain = try await kv.wait("READY after reload", timeout: .seconds(30)) {
            kv.notifyMessages.dropFirst(mark).first { $0.contains("READY=1") }
        }
        #expect(try await Self.answeredSaves(port).contains("b-"), "READY before the reload's warm of b was saved")
        #expect(readyAgain.contains("watching 2 templates"))
        // logs travel on stderr, notifications on the socket: await the record, do not assume its order
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "b", "OUTCOME": "ok"], timeout: .seconds(10))

        // a bad config on reload keeps the old one and says why
        try dir.write("config.json", "{ not json")
        let mark2 = kv.notifyMessages.count
        kv.signal(SIGHUP)
        let rejected = try await kv.wait("READY after rejected reload", timeout: .seconds(30)) {
            kv.notifyMessages.dropFirst(mark2).first { $0.contains("READY=1") }
        }
        #expect(rejected.contains("reload rejected"))
        let why = try await kv.awaitRecord(["STAGE": "reload", "OUTCOME": "failed"], timeout: .seconds(10))
        #expect(why["MESSAGE"]?.contains("syntax error") == true)
        #expect(kv.process.isRunning)
        #expect(kv.stop() == 0)
    }

    /// The file names of the slot saves the fake server has answered so far, joined by spaces.
    static func answeredSaves(_ port: Int) async throws -> String {
        let out = try await ProcessRunner.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/__requests?path=/slots"])
        let log = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] ?? []
        return log.filter { $0["t_done"] != nil && ($0["path"] as? String)?.contains("action=save") == true }
            .compactMap { ($0["body"] as? [String: Any])?["filename"] as? String }.joined(separator: " ")
    }

    // SIGTERM in the middle of a warm: HostileSignalTests.sigtermDuringThirtySecondWarmExitsWithinTwoSeconds
    // (exit 0, STOPPING=1 and no READY, a consistent state file, no leftovers).

    @Test(arguments: ["degraded", "fail"])
    func unreachableBackendFollowsThePolicy(policy: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let port = try LlamaServerFixture.freePort()  // nothing listens there
        let config = try Self.writeConfig(dir, port: port, templates: ["a": "some prompt <{message}>"],
                                          startup: ["backend_wait_seconds": 1, "on_unavailable": policy])
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        if policy == "degraded" {
            let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(30))
            #expect(ready.contains("STATUS=degraded"))
            #expect(kv.stop() == 0)
        } else {
            let failed = try await kv.wait("exit", timeout: .seconds(30)) { kv.process.isRunning ? nil : kv.process.terminationStatus }
            #expect(failed == 69)
            #expect(kv.notifyMessages.contains { $0.contains("ERRNO=") && $0.contains("STATUS=failed") })
            #expect(!kv.notifyMessages.contains { $0.contains("READY=1") })
        }
    }

    @Test func degradedStartupWarmsWhenTheBackendArrives() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let port = try LlamaServerFixture.freePort()
        var config = try Self.writeConfig(dir, port: port, templates: ["late": "A prompt that waits for its server. <{message}>"],
                                          startup: ["backend_wait_seconds": 0.5, "on_unavailable": "degraded"])
        // a fast backend check so the test need not wait long
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config))) as! [String: Any]
        var backend = cfg["backend"] as! [String: Any]
        backend["check_interval_seconds"] = 0.3
        cfg["backend"] = backend
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: config))
        config = dir.file("config.json")
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        #expect(ready.contains("STATUS=degraded"))
        #expect(!kv.logRecords.contains { $0["STAGE"] == "warm" && $0["OUTCOME"] == "ok" })
        let (fake, _) = try Self.startFake(["--slot-save-path", dir.file("slots"), "--port", String(port)], dir: dir)
        defer { fake.stopBounded() }
        let warm = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "late", "OUTCOME": "ok"], timeout: .seconds(30))
        #expect(warm["MODE"] == "prefill")
        #expect(kv.stop() == 0)
    }

    /// A template failed by a missing include, or by its own file missing, heals when the file is back:
    /// `rm` then `cp`, as `git checkout` of a template directory does it; nothing else is touched.
    @Test func aFailureHealsWhenTheMissingIncludeOrTemplateComesBack() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fake, port) = try Self.startFake(["--slot-save-path", dir.file("slots")], dir: dir)
        defer { fake.stopBounded() }
        let style = try dir.write("tpl/style.txt", String(repeating: "Prefer small functions. ", count: 20))
        let saved = try dir.write("saved-style.txt", try String(contentsOfFile: style, encoding: .utf8))
        let config = try Self.writeConfig(dir, port: port, templates: ["t": "Rules: <{style.txt}>\nCode: <{message}>"])
        let template = dir.file("tpl/t.txt")
        let savedTemplate = try dir.write("saved-t.txt", try String(contentsOfFile: template, encoding: .utf8))
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        for (path, copy, reason) in [(style, saved, "include_missing"), (template, savedTemplate, "missing")] {
            var mark = kv.logRecords.count
            _ = try await ProcessRunner.run("/bin/rm", [path])
            try await kv.awaitRecord(["STAGE": "hash", "TEMPLATE": "t", "OUTCOME": "failed", "REASON": reason],
                                     after: mark, timeout: .seconds(10))
            mark = kv.logRecords.count
            _ = try await ProcessRunner.run("/bin/cp", [copy, path])
            let warm = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "t", "OUTCOME": "ok"],
                                                after: mark, timeout: .seconds(10))
            #expect(warm["MODE"] != nil, "\(reason): the template is warm again")
            let notice = try await kv.awaitRecord(["TEMPLATE": "t", "REASON": "recovered"], after: mark, timeout: .seconds(10))
            #expect(notice["MESSAGE"]?.contains("does not exist") == true, "names the failure it got over: \(notice)")
        }
        let status = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", config, "--json"])
        #expect(!status.stdout.contains("does not exist"), "the failure is cleared: \(status.stdout)")
        #expect(kv.stop() == 0)
    }

    /// Without a backend, the journal says at once that kvwarm waits, and why (not only STATUS=).
    @Test func waitingForTheBackendIsLogged() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let port = try LlamaServerFixture.freePort()
        let config = try Self.writeConfig(dir, port: port, templates: ["t": "Hello <{message}>"],
                                          startup: ["backend_wait_seconds": 30])
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        let rec = try await kv.awaitRecord(["MESSAGE_ID": "f6a8a91f4dc34b1e91196c57d46c1f74"], timeout: .seconds(30))
        #expect(rec["REASON"] == "unreachable")
        #expect(rec["MESSAGE"]?.contains("127.0.0.1:\(port)") == true, "\(rec)")
        #expect(kv.stop() == 0)
    }

    @Test func editsDuringAWarmQueueOneFollowUpWithTheLatestContent() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // ~20 ms per token: the first warm of ~150 tokens takes ~3 s
        let (fake, port) = try Self.startFake(["--slot-save-path", dir.file("slots"), "--prefill-ms-per-token", "20"], dir: dir)
        defer { fake.stopBounded() }
        let base = String(repeating: "Steady words for a slow warm. ", count: 25)
        let config = try Self.writeConfig(dir, port: port, templates: ["t": "v1 " + base + "<{message}>"])
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json", "--log-level", "debug"], directory: dir.path)
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        let mark = kv.logRecords.count
        // v2 starts a warm; v3, v4, v5 arrive while it is in flight (each after the 50 ms debounce)
        for v in 2...5 {
            try ("v\(v) " + base + "<{message}>").write(toFile: dir.file("tpl/t.txt"), atomically: false, encoding: .utf8)
            if v == 2 {
                try await kv.awaitRecord(["STAGE": "hash", "TEMPLATE": "t"], after: mark, timeout: .seconds(10))
            } else {
                try await kv.awaitRecord(["STAGE": "debounce", "TEMPLATE": "t"],
                                         after: kv.logRecords.count, timeout: .seconds(10))
            }
        }
        var warms: [[String: String]] = []
        _ = try await kv.wait("two warms", timeout: .seconds(30)) { () -> Bool? in
            warms = kv.logRecords.dropFirst(mark).filter { $0["STAGE"] == "warm" && $0["OUTCOME"] == "ok" }
            return warms.count >= 2 ? true : nil
        }
        // nothing more follows: the queue is empty once the follow-up is done
        let requests = try await ProcessRunner.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/__requests?path=/completion"])
        let log = try JSONSerialization.jsonObject(with: Data(requests.stdout.utf8)) as? [[String: Any]] ?? []
        let prompts = log.compactMap { ($0["body"] as? [String: Any])?["prompt"] as? String }
        #expect(prompts.count == 3, "startup + one in flight + one follow-up, got \(prompts.count)")
        #expect(prompts.last?.contains("v5") == true, "the follow-up warms the latest content")
        #expect(!prompts.contains { $0.contains("v3") || $0.contains("v4") }, "intermediate versions are never warmed")
        let queued = kv.logRecords.dropFirst(mark).filter { $0["MESSAGE_ID"] == "263d36d652814daca91f9239e13fdc79" }
        #expect(queued.count == 1, "the follow-up says once that it waits: \(queued)")
        #expect(queued.first?["BEHIND"] == "t")
        #expect(queued.first?["MESSAGE"]?.contains("changed while its warm runs") == true, "\(queued)")
        #expect(kv.stop() == 0)
    }

    @Test func aTouchRightAfterAModelSwapPrefillsInsteadOfRestoring() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (fake, port) = try Self.startFake(["--slot-save-path", dir.file("slots")], dir: dir)
        defer { fake.stopBounded() }
        // the default backend check (5 s) is far slower than this test's touch
        let config = try Self.writeConfig(dir, port: port, templates: ["t": "A stable prompt about swaps. <{message}>"])
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json"], directory: dir.path)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        // the server now reports another context size (as after a restart with another -c)
        let control = try await ProcessRunner.run("/usr/bin/curl", [
            "-s", "-X", "POST", "http://127.0.0.1:\(port)/__control", "-H", "Content-Type: application/json",
            "--data-binary", #"{"faults": {"fingerprint_flip": {"n_ctx": 2048, "mode": "permanent"}}}"#,
        ])
        #expect(control.status == 0)
        let mark = kv.logRecords.count
        _ = try await ProcessRunner.run("/usr/bin/touch", [dir.file("tpl/t.txt")])
        let warm = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "t", "OUTCOME": "ok"], after: mark,
                                            timeout: .seconds(20))
        #expect(warm["MODE"] == "prefill", "a KV file of the old backend was restored: \(warm)")
        let requests = try await ProcessRunner.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/__requests"])
        #expect(!requests.stdout.contains("action=restore"))
        #expect(kv.stop() == 0)
    }
}
