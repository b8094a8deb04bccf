import Foundation
import KVWarmTestSupport
import KVWarm
import Testing

/// The spine against the real llama-server and gemma-3-270m: startup warm,
/// READY only after it, client chat requests hit, edits re-prefill, touch
/// restores, and a restart of both comes back by restore.
@Suite(.serialized, .enabled(if: LlamaServerFixture.isAvailable, "run .ci/provision first"))
struct StartupWarmTests {
    static let questions = ["What does rule 3 say?", "Summarise rule 10.", "Which rule mentions 42?"]

    @Test(arguments: [true, false])
    func startupWarmEditTouchAndRestart(swaFull: Bool) async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        var opts = LlamaServerFixture.Options()
        opts.swaFull = swaFull
        var server: LlamaServerFixture? = try await LlamaServerFixture(
            slotDir: ws.slots, logPath: ws.dir.file("server.log"), options: opts)
        let port = server!.port
        defer { server?.stop() }

        var texts = [
            "code": templateText(topic: "code review", sentences: 62),
            "sql": templateText(topic: "SQL tuning", sentences: 62, placeholder: false),
            "ops": templateText(topic: "incident response", sentences: 62),
        ]
        for (n, t) in texts { try t.write(toFile: ws.templates + "/\(n).txt", atomically: true, encoding: .utf8) }
        try ws.writeConfig(backend: server!.backendURL, backendExtra: ["check_interval_seconds": 1], templates: [
            "code": ws.templates + "/code.txt",
            "sql": ["path": ws.templates + "/sql.txt", "role": "system"],
            "ops": ws.templates + "/ops.txt",
        ])

        // 1. startup warm, then READY
        var kv: KVWarmProcess? = try ws.startKVWarm()
        let ready = try await kv!.awaitNotify("READY=1")
        #expect(ready.contains("STATUS=watching 3 templates (0 failed)"))
        // the ready record is written just before READY=1; stderr is ordered, so every earlier record is in
        try await kv!.awaitRecord(["MESSAGE_ID": MessageID.startupReady.rawValue], timeout: .seconds(10))
        let warmsBeforeReady = kv!.logRecords.filter { $0["STAGE"] == "warm" && $0["OUTCOME"] == "ok" }
        #expect(Set(warmsBeforeReady.compactMap { $0["TEMPLATE"] }) == ["code", "sql", "ops"])
        let tokens = Dictionary(uniqueKeysWithValues: warmsBeforeReady.map { ($0["TEMPLATE"]!, $0.int("PROMPT_TOKENS")) })
        #expect(tokens.values.allSatisfy { $0 > 800 }, "templates should be ~1,000 tokens: \(tokens)")
        #expect(kv!.notifyMessages.contains { $0.contains("EXTEND_TIMEOUT_USEC=") && $0.contains("STATUS=warming") })

        // 2. a client's chat request reuses the warm prefix
        func assertHits(_ label: String, _ texts: [String: String]) async throws {
            for (name, text) in texts {
                let hit: (cached: Int, prompt: Int)
                if name == "sql" {
                    hit = try await server!.chat(Self.questions[0], system: text)
                } else {
                    hit = try await server!.chat(filled(text, Self.questions[1]))
                }
                #expect(Double(hit.cached) >= 0.9 * Double(tokens[name]!),
                        "\(label) \(name): cache_n \(hit.cached) of warm prefix \(tokens[name]!) (prompt \(hit.prompt))")
            }
        }
        try await assertHits("after startup", texts)

        if swaFull {
            // 3. an edit (sed -i renames over the file) re-prefills, and the next request hits
            let mark = kv!.logRecords.count
            let sed = try await ProcessRunner.run("/usr/bin/sed", ["-i", "s/Rule 5:/Rule five:/", ws.templates + "/code.txt"])
            #expect(sed.status == 0)
            let edit = try await kv!.awaitRecord(["STAGE": "warm", "TEMPLATE": "code", "OUTCOME": "ok"], after: mark)
            #expect(edit["MODE"] == "prefill")
            let edited = try String(contentsOfFile: ws.templates + "/code.txt", encoding: .utf8)
            #expect(edited != texts["code"])
            texts["code"] = edited
            let hit = try await server!.chat(filled(edited, "Explain rule five."))
            #expect(Double(hit.cached) >= 0.9 * Double(edit.int("PROMPT_TOKENS")))

            // 4. touch (unchanged content) re-warms from the KV file
            let mark2 = kv!.logRecords.count
            _ = try await ProcessRunner.run("/usr/bin/touch", [ws.templates + "/ops.txt"])
            let touched = try await kv!.awaitRecord(["STAGE": "warm", "TEMPLATE": "ops", "OUTCOME": "ok"], after: mark2)
            #expect(touched["MODE"] == "restore")
            #expect(touched.int("CACHED_TOKENS") >= touched.int("PROMPT_TOKENS") - 2)
        }

        // 5. kvwarm render shows the prompt as the server renders it, and the warmable prefix
        let render = try await ProcessRunner.run(KVWarmProcess.binary, ["render", "ops", "--config", ws.config])
        #expect(render.status == 0, "\(render.stderr)")
        #expect(render.stdout.contains("<{message}>") && render.stdout.contains("incident response"))
        #expect(render.stderr.contains("warmable prefix: \(tokens["ops"]!) tokens"), "\(render.stderr)")
        let status = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--json", "--config", ws.config])
        let statusJSON = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect((statusJSON?["backend"] as? [String: Any])?["healthy"] as? Bool == true)
        #expect((statusJSON?["templates"] as? [[String: Any]])?.count == 3)

        if swaFull {
            // 6. llama-server crashes and comes back under a running kvwarm: it notices and re-warms by restore
            let mark = kv!.logRecords.count
            server!.kill9()
            server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("server-crash.log"),
                                                  options: opts, port: port)
            var rewarmed: [String: [String: String]] = [:]
            _ = try await kv!.wait("re-warm of all templates", timeout: .seconds(60)) { () -> Bool? in
                for r in kv!.logRecords.dropFirst(mark) where r["STAGE"] == "warm" && r["OUTCOME"] == "ok" {
                    rewarmed[r["TEMPLATE"]!] = r
                }
                return rewarmed.count == 3 ? true : nil
            }
            for (name, r) in rewarmed {
                #expect(r["MODE"] == "restore", "\(name): \(r)")
                #expect(r.int("PROMPT_TOKENS") - r.int("CACHED_TOKENS") <= 2, "\(name): \(r)")
            }
            try await assertHits("after llama-server restart", texts)
        }

        // 7. stop both, restart both: kvwarm comes back by restore where restores work
        let stopMark = kv!.notifyMessages.count
        #expect(kv!.stop() == 0)
        #expect(kv!.notifyMessages.dropFirst(stopMark).contains { $0.contains("STOPPING=1") })
        kv = nil
        server!.stop()
        server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("server2.log"),
                                              options: opts, port: port)
        kv = try ws.startKVWarm()
        try await kv!.awaitNotify("READY=1")
        try await kv!.awaitRecord(["MESSAGE_ID": MessageID.startupReady.rawValue], timeout: .seconds(10))
        let warms = kv!.logRecords.filter { $0["STAGE"] == "warm" && $0["OUTCOME"] == "ok" }
        if swaFull {
            #expect(warms.count == 3)
            for w in warms {
                #expect(w["MODE"] == "restore", "\(w)")
                #expect(w.int("PROMPT_TOKENS") - w.int("CACHED_TOKENS") <= 2, "\(w)")
            }
        } else {
            // the SWA trap: the first restore does not take; kvwarm says so once and prefills from then on
            let ineffective = kv!.logRecords.filter { $0["OUTCOME"] == "ineffective" }
            #expect(ineffective.count == 1)
            #expect(ineffective.first?["HINT"]?.contains("--swa-full") == true)
            // the probe of that restore prefilled its slot; every warm is a prefill, none tried restore again
            #expect(warms.count == 3)
            #expect(warms.allSatisfy { $0["MODE"] == "prefill" })
            let restoreAttempts = kv!.logRecords.filter { $0["STAGE"] == "hash" && $0["MODE"] == "restore" }
            #expect(restoreAttempts.count == 1, "restore is not tried again under this fingerprint")
            let state = try String(contentsOfFile: ws.state + "/state.json", encoding: .utf8)
            #expect(state.contains("restoreIneffective"))
        }
        try await assertHits("after restart", texts)
        #expect(kv!.stop() == 0)
    }
}
