import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// Issue 3's traps, each against the real llama-server: more templates than
/// slots, fingerprint changes, busy slots, API keys, unix sockets, slot files
/// and render fidelity.
@Suite(.serialized, .enabled(if: LlamaServerFixture.isAvailable, "run .ci/provision first"))
struct BehaviourMatrixTests {
    static let ready = MessageID.startupReady.rawValue

    /// Starts kvwarm and returns it once READY=1 and the ready record are in.
    func startReady(_ ws: Workspace, _ args: [String] = []) async throws -> KVWarmProcess {
        let kv = try ws.startKVWarm(args)
        try await kv.awaitNotify("READY=1")
        try await kv.awaitRecord(["MESSAGE_ID": Self.ready], timeout: .seconds(10))
        return kv
    }

    func warmRecords(_ kv: KVWarmProcess, after: Int = 0) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        for r in kv.logRecords.dropFirst(after) where r["STAGE"] == "warm" && r["OUTCOME"] == "ok" {
            out[r["TEMPLATE"]!] = r
        }
        return out
    }

    // 1. six templates on a server with four slots, at startup and after a restart (restore)
    @Test func moreTemplatesThanSlots() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        var server: LlamaServerFixture? = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("s1.log"))
        defer { server?.stop() }
        let port = server!.port
        let topics = ["billing", "security", "networking", "storage", "compilers", "databases"]
        var texts: [String: String] = [:]
        for (i, t) in topics.enumerated() {
            texts["t\(i)"] = templateText(topic: t, sentences: 25)
            try texts["t\(i)"]!.write(toFile: ws.templates + "/t\(i).txt", atomically: true, encoding: .utf8)
        }
        try ws.writeConfig(backend: server!.backendURL,
                           templates: Dictionary(uniqueKeysWithValues: texts.keys.map { ($0, ws.templates + "/\($0).txt") }))
        var kv: KVWarmProcess? = try await startReady(ws)
        let first = warmRecords(kv!)
        #expect(first.count == 6)
        func assertAllHit(_ label: String) async throws {
            for (name, text) in texts.sorted(by: { $0.key < $1.key }) {
                let hit = try await server!.chat(filled(text, "Which rule is most important?"))
                let warm = first[name]!.int("PROMPT_TOKENS")
                #expect(Double(hit.cached) >= 0.9 * Double(warm), "\(label) \(name): cache_n \(hit.cached) of \(warm)")
            }
        }
        try await assertAllHit("startup")
        #expect(kv!.stop() == 0)
        kv = nil
        server!.stop()
        server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("s2.log"), port: port)
        kv = try await startReady(ws)
        let restored = warmRecords(kv!)
        #expect(restored.count == 6)
        #expect(restored.values.allSatisfy { $0["MODE"] == "restore" }, "\(restored.values.map { $0["MODE"] ?? "" })")
        try await assertAllHit("after restart")
        #expect(kv!.stop() == 0)
    }

    // 3. another context size, slot layout or model file forces a prefill, never a restore
    @Test func fingerprintChangesForcePrefill() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        let text = templateText(topic: "fingerprints", sentences: 20)
        try text.write(toFile: ws.templates + "/fp.txt", atomically: true, encoding: .utf8)
        let modelCopy = ws.dir.file("model-copy.gguf")
        try FileManager.default.copyItem(atPath: LlamaServerFixture.model, toPath: modelCopy)
        var base = LlamaServerFixture.Options()
        base.contextSize = 8192
        var smallerContext = base
        smallerContext.contextSize = 4096
        var twoSlots = base
        twoSlots.parallel = 2
        var otherModel = base
        otherModel.model = modelCopy
        let port = try LlamaServerFixture.freePort()
        var lastReasons: [String] = []
        for (i, opts) in [base, base, smallerContext, twoSlots, otherModel].enumerated() {
            let server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("fp\(i).log"),
                                                      options: opts, port: port)
            defer { server.stop() }
            if i == 0 { try ws.writeConfig(backend: server.backendURL, templates: ["fp": ws.templates + "/fp.txt"]) }
            let kv = try await startReady(ws)
            let warm = try #require(warmRecords(kv)["fp"])
            let hash = kv.logRecords.last { $0["STAGE"] == "hash" && $0["TEMPLATE"] == "fp" }
            lastReasons.append(hash?["REASON"] ?? "-")
            // run 1 is a restart with the same fingerprint: restore; every other change: prefill
            #expect(warm["MODE"] == (i == 1 ? "restore" : "prefill"), "run \(i): \(warm) \(hash ?? [:])")
            if i >= 2 { #expect(hash?["REASON"] == "backend fingerprint changed", "run \(i)") }
            let hit = try await server.chat(filled(text, "Go."))
            #expect(Double(hit.cached) >= 0.9 * Double(warm.int("PROMPT_TOKENS")), "run \(i)")
            #expect(kv.stop() == 0)
        }
        #expect(lastReasons.first == "first warm")
    }

    // 4. a warm never pins the slot of a running user request
    @Test func busySlotsAreNeverPinned() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        let server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("busy.log"))
        defer { server.stop() }
        let text = templateText(topic: "busy slots", sentences: 20)
        try text.write(toFile: ws.templates + "/busy.txt", atomically: true, encoding: .utf8)
        try ws.writeConfig(backend: server.backendURL, templates: ["busy": ws.templates + "/busy.txt"])
        let kv = try await startReady(ws)

        let userPrompt = "Write a long story about a lighthouse keeper who counts ships."
        func longRequest() async throws -> (slot: Int, content: String) {
            let (status, json) = try await server.request("POST", "/completion", body: [
                "prompt": userPrompt, "n_predict": 120, "temperature": 0, "seed": 1, "cache_prompt": false,
            ])
            let o = try #require(json as? [String: Any], "status \(status)")
            return ((o["id_slot"] as? Int) ?? -1, (o["content"] as? String) ?? "")
        }
        let baseline = try await longRequest()
        // run it again, and while it runs make kvwarm warm (an edit → prefill)
        let running = Task { try await longRequest() }
        var busySlot: Int?
        let deadline = ContinuousClock.now + .seconds(20)
        while busySlot == nil, ContinuousClock.now < deadline {
            let (_, slots) = try await server.request("GET", "/slots", body: nil)
            busySlot = (slots as? [[String: Any]])?.first { ($0["is_processing"] as? Bool) == true }?["id"] as? Int
        }
        let busy = try #require(busySlot, "the long request never showed as processing")
        let mark = kv.logRecords.count
        try (text + "\nOne more rule.\n").write(toFile: ws.templates + "/busy.txt", atomically: false, encoding: .utf8)
        let warm = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "busy", "OUTCOME": "ok"], after: mark,
                                            timeout: .seconds(60))
        let user = try await running.value
        #expect(user.slot == busy)
        // with empty idle slots around this holds even for a careless scheduler; SlotSchedulerTests pins the rule
        #expect(warm.int("SLOT") != busy, "the warm pinned busy slot \(busy): \(warm)")
        #expect(user.content == baseline.content, "the user request's output changed")
        #expect(kv.stop() == 0)
    }

    // 5. --api-key: with the key file everything warms; without it one clear credential error, bounded retries
    @Test func apiKey() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        let key = "kvwarm-test-key-\(UInt32.random(in: 0...UInt32.max))"
        var opts = LlamaServerFixture.Options()
        opts.apiKey = key
        let server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("key.log"), options: opts)
        defer { server.stop() }
        let text = templateText(topic: "credentials", sentences: 15)
        try text.write(toFile: ws.templates + "/k.txt", atomically: true, encoding: .utf8)
        try (key + "\n").write(toFile: ws.dir.file("api_key"), atomically: true, encoding: .utf8)
        try ws.writeConfig(backend: server.backendURL, backendExtra: ["api_key_file": ws.dir.file("api_key")],
                           templates: ["k": ws.templates + "/k.txt"])
        let kv = try await startReady(ws)
        #expect(kv.notifyMessages.contains { $0.contains("watching 1 template (0 failed)") })
        let hit = try await server.chat(filled(text, "Hello?"))
        #expect(hit.cached > 0)
        #expect(kv.stop() == 0)
        #expect(!kv.stderrLines.joined().contains(key), "the API key reached the log")
        let state = try String(contentsOfFile: ws.state + "/state.json", encoding: .utf8)
        #expect(!state.contains(key))

        // without the key file
        try ws.writeConfig(backend: server.backendURL, templates: ["k": ws.templates + "/k.txt"])
        let nokey = try ws.startKVWarm()
        let ready = try await nokey.awaitNotify("READY=1")
        #expect(ready.contains("(1 failed)"))
        let cred = try await nokey.awaitRecord(["MESSAGE_ID": MessageID.credentialRejected.rawValue, "PRIORITY": "3"])
        #expect(cred["HINT"]?.contains("api_key_file") == true)
        #expect(cred["REASON"] == "unauthorized")
        // bounded: over 6 s at most a handful of attempts (backoff 1 s, 2 s, 4 s…), one error-level record
        try await Task.sleep(for: .seconds(6))
        let attempts = nokey.logRecords.filter { $0["MESSAGE_ID"] == MessageID.credentialRejected.rawValue }
        #expect(attempts.count <= 4, "\(attempts.count) attempts in ~6 s")
        #expect(attempts.filter { $0["PRIORITY"] == "3" }.count == 1, "the credential error is reported once")
        #expect(nokey.stop() == 0)
    }

    // 7. llama-server on a unix socket
    @Test func unixSocket() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        var opts = LlamaServerFixture.Options()
        opts.unixSocket = ws.dir.file("llama.sock")
        let server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("unix.log"), options: opts)
        defer { server.stop() }
        let text = templateText(topic: "sockets", sentences: 20)
        try text.write(toFile: ws.templates + "/u.txt", atomically: true, encoding: .utf8)
        try ws.writeConfig(backend: server.backendURL, templates: ["u": ws.templates + "/u.txt"])
        #expect(server.backendURL.hasPrefix("unix:/"))
        let kv = try await startReady(ws)
        let warm = try #require(warmRecords(kv)["u"])
        let hit = try await server.chat(filled(text, "Over the socket?"))
        #expect(Double(hit.cached) >= 0.9 * Double(warm.int("PROMPT_TOKENS")))
        let mark = kv.logRecords.count
        _ = try await ProcessRunner.run("/usr/bin/touch", [ws.templates + "/u.txt"])
        let touched = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "u", "OUTCOME": "ok"], after: mark)
        #expect(touched["MODE"] == "restore")
        #expect(kv.stop() == 0)
    }

    // 8 + 9. slot files are pruned and swept; a placeholder near the top is warned about
    @Test func slotFilesAndRenderFidelity() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        let server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("files.log"))
        defer { server.stop() }
        let text = templateText(topic: "slot files", sentences: 15)
        try text.write(toFile: ws.templates + "/f.txt", atomically: true, encoding: .utf8)
        try "Answer briefly: <{message}>\n\(templateText(topic: "tails", sentences: 5, placeholder: false))"
            .write(toFile: ws.templates + "/early.txt", atomically: true, encoding: .utf8)
        try ws.writeConfig(backend: server.backendURL, templates: [
            "f": ws.templates + "/f.txt", "early": ws.templates + "/early.txt",
        ])
        // an orphan of one of this config's templates, a leftover partial save, a file of kvwarm's
        // naming for a template this config does not have (another kvwarm's), and an operator's file
        for name in ["f-0123456789ab.bin", "f-aaaaaaaaaaaa.bin.partial", "gone-0123456789ab.bin", "operator-file.bin"] {
            FileManager.default.createFile(atPath: ws.slots + "/" + name, contents: Data("x".utf8))
        }
        let kv = try await startReady(ws)
        var files = Set(try FileManager.default.contentsOfDirectory(atPath: ws.slots))
        #expect(!files.contains("f-0123456789ab.bin"))
        #expect(!files.contains("f-aaaaaaaaaaaa.bin.partial"))
        #expect(files.contains("gone-0123456789ab.bin"), "another instance's KV file stays")
        #expect(files.contains("operator-file.bin"))
        let before = try #require(files.first { $0.hasPrefix("f-") && $0.hasSuffix(".bin") })
        #expect(!files.contains { $0.hasSuffix(".partial") })

        let warning = try await kv.awaitRecord(["STAGE": "render", "TEMPLATE": "early", "PRIORITY": "4"])
        #expect(warning["HINT"]?.contains("<{message}>") == true)

        // an edit after <{message}> leaves the warm prompt as it was: restored from the same file
        var mark = kv.logRecords.count
        try (text + "\nA new closing rule.\n").write(toFile: ws.templates + "/f.txt", atomically: true, encoding: .utf8)
        let same = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "f", "OUTCOME": "ok"], after: mark)
        #expect(same["MODE"] == "restore", "the server renders the same prefix: \(same)")
        #expect(kv.logRecords.dropFirst(mark).contains { $0["MESSAGE"]?.contains("renders the same prompt") == true })
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: ws.slots)).contains(before))

        // an edit before it is a new prefix: prefilled, saved, and the superseded file pruned
        mark = kv.logRecords.count
        try text.replacingOccurrences(of: "Rule 3:", with: "Rule three:")
            .write(toFile: ws.templates + "/f.txt", atomically: true, encoding: .utf8)
        let saved = try await kv.awaitRecord(["STAGE": "persist", "TEMPLATE": "f", "OUTCOME": "ok"], after: mark)
        files = Set(try FileManager.default.contentsOfDirectory(atPath: ws.slots))
        #expect(files.contains(saved["KV_FILE"]!))
        #expect(!files.contains(before), "the superseded KV file \(before) was not pruned")

        let render = try await ProcessRunner.run(KVWarmProcess.binary, ["render", "early", "--config", ws.config])
        #expect(render.status == 0)
        #expect(render.stderr.contains("warning: only"), "\(render.stderr)")
        #expect(kv.stop() == 0)
    }
}
