import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// kvwarm against the real llama-server in router mode (two models, alpha and beta: the test
/// GGUF under two names, `--models-max 1`, autoload on) and the real `openai` client: first
/// requests per model, an unload and an LRU eviction kvwarm leaves alone, and a load after
/// which the template is warm again by restore. The server's `timings` are the evidence.
@Suite(.serialized, .enabled(if: LlamaServerFixture.isAvailable && OpenAIAgentClient.isAvailable,
                             "run .ci/provision first (llama-server, model, openai venv)"))
struct RouterServerTests {
    static let question = "Which rule matters most here?"

    /// A request template for `model`: a long system prompt, then the user's message.
    static func body(model: String, topic: String) -> [String: Any] {
        ["model": model, "max_tokens": 1, "temperature": 0,
         "messages": [["role": "system", "content": templateText(topic: topic, sentences: 40, placeholder: false)],
                      ["role": "user", "content": "<{message}>"]]]
    }

    static func timestamp(_ r: [String: String]) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return r["TIMESTAMP"].flatMap { f.date(from: $0) }
    }

    static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    static func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }

    @Test func routerModelsAreWarmedWithoutEverBeingLoadedByKVWarm() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        let router = try await LlamaRouterFixture(models: ["alpha", "beta"], modelsMax: 1, workDir: ws.dir.path,
                                                  slotDir: ws.slots)
        defer { router.stop() }
        var figures: [String] = []
        let files = ["a": ws.templates + "/alpha.json", "b": ws.templates + "/beta.json"]
        try JSONSerialization.data(withJSONObject: Self.body(model: "alpha", topic: "tax law")).write(to: URL(fileURLWithPath: files["a"]!))
        try JSONSerialization.data(withJSONObject: Self.body(model: "beta", topic: "bird song")).write(to: URL(fileURLWithPath: files["b"]!))
        try await router.post("load", "alpha")
        try await router.awaitStatus("alpha", "loaded")

        // without a model the router is refused, with the key to set
        try ws.writeConfig(backend: router.backendURL, templates: ["a": files["a"]!])
        var kv = try ws.startKVWarm()
        let refused = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "failed"], timeout: .seconds(60))
        #expect(refused["MESSAGE"]?.contains("templates.NAME.model") == true, "\(refused)")
        #expect(kv.stop() == 0)

        try ws.writeConfig(backend: router.backendURL, backendExtra: ["check_interval_seconds": 2],
                           templates: ["a": ["path": files["a"]!, "model": "alpha"], "b": ["path": files["b"]!, "model": "beta"]])
        kv = try ws.startKVWarm()
        let ready = try await kv.awaitNotify("READY=1")
        #expect(ready.contains("1 of 2 models unloaded"), "\(ready)")
        #expect(try await router.statuses()["beta"] == "unloaded", "READY without loading beta")
        let warmA = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(30))
        #expect(warmA["MODEL"] == "alpha" && warmA["BACKEND"] == "default", "\(warmA)")
        let tokensA = warmA.int("PROMPT_TOKENS")
        #expect(FileManager.default.fileExists(atPath: ws.slots + "/" + (warmA["KV_FILE"] ?? "none")) || warmA["KV_FILE"] == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws.slots).contains { $0.hasPrefix("alpha--a-") },
                "the KV file names the model")

        // 1. alpha's first request
        let first = try await OpenAIAgentClient.send(baseURL: router.backendURL, request: files["a"]!, messages: [Self.question])[0]
        figures.append("alpha, first request after READY: \(first) (template \(tokensA) tokens)")
        #expect(first.cached >= tokensA - 2, "\(first)")

        // 2. an unload kvwarm leaves alone; a load after which alpha is warm again by restore
        var loadToWarm: [Double] = [], warmMS: [Double] = [], eventToWarm: [Double] = []
        for round in 0..<3 {
            var mark = kv.logRecords.count
            try await router.post("unload", "alpha")
            let gone = try await kv.awaitRecord(["MESSAGE_ID": MessageID.modelUnloaded.rawValue, "MODEL": "alpha"], after: mark,
                                                timeout: .seconds(20))
            #expect(gone["OUTCOME"] == "unloaded")
            mark = kv.logRecords.count
            try await router.post("load", "alpha")
            let loaded = try await router.awaitStatus("alpha", "loaded")
            let warm = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], after: mark, timeout: .seconds(20))
            #expect(warm["MODE"] == "restore", "round \(round): \(warm)")
            if let done = Self.timestamp(warm) { loadToWarm.append(done.timeIntervalSince(loaded) * 1000) }
            warmMS.append(Double(warm.int("DURATION_MS")))
            // the router's own "loaded" event, as kvwarm received it
            if let event = kv.logRecords.dropFirst(mark).first(where: { $0["MODEL"] == "alpha" && $0["REASON"] == "loaded" }),
               let t0 = Self.timestamp(event), let t1 = Self.timestamp(warm) {
                eventToWarm.append(t1.timeIntervalSince(t0) * 1000)
            }
            let again = try await OpenAIAgentClient.send(baseURL: router.backendURL, request: files["a"]!, messages: [Self.question])[0]
            #expect(again.cached >= tokensA - 2, "round \(round): \(again)")
            if round == 0 { figures.append("alpha, first request after an unload and a load: \(again)") }
        }

        // the same restore and probe by hand, for comparison
        var raw: [Double] = []
        // the warm prompt: the template as the model's chat template renders it, up to the message
        let render = try await ProcessRunner.run(KVWarmProcess.binary, ["render", "a", "--config", ws.config])
        #expect(render.status == 0, "\(render.stderr)")
        let prompt = String(render.stdout.components(separatedBy: "<{message}>")[0])
        let kvFile = try FileManager.default.contentsOfDirectory(atPath: ws.slots).first { $0.hasPrefix("alpha--a-") && $0.hasSuffix(".bin") }!
        for _ in 0..<3 {
            let t0 = ContinuousClock.now
            let (rs, _) = try await router.request("POST", "/slots/1?action=restore", body: ["model": "alpha", "filename": kvFile])
            let (cs, _) = try await router.request("POST", "/completion", body: [
                "model": "alpha", "prompt": prompt, "n_predict": 1, "id_slot": 1, "cache_prompt": true])
            #expect(rs == 200 && cs == 200)
            raw.append(Self.ms(t0.duration(to: .now)))
            _ = try await router.request("POST", "/slots/1?action=erase", body: ["model": "alpha"])
        }
        let ratio = Self.median(loadToWarm) / Self.median(raw)
        #expect(eventToWarm.count == 3, "each load arrived as a /models/sse event")
        figures.append("the router's loaded event (/models/sse) → kvwarm's warm record: median \(Int(Self.median(eventToWarm))) ms of \(eventToWarm.map { Int($0) })")
        figures.append("GET /models shows loaded → kvwarm's warm record: median \(Int(Self.median(loadToWarm))) ms of \(loadToWarm.map { Int($0) }) (the warm itself: median \(Int(Self.median(warmMS))) ms); the same restore + probe by hand (two curl calls): median \(Int(Self.median(raw))) ms of \(raw.map { Int($0) }); ratio \(String(format: "%.2f", ratio))")

        // 3. LRU eviction (--models-max 1): a client asks for beta, the router evicts alpha
        let mark = kv.logRecords.count
        let betaFirst = try await OpenAIAgentClient.send(baseURL: router.backendURL, request: files["b"]!, messages: [Self.question])[0]
        figures.append("beta, the request that loads it (evicting alpha): \(betaFirst)")
        try await kv.awaitRecord(["MESSAGE_ID": MessageID.modelUnloaded.rawValue, "MODEL": "alpha"], after: mark, timeout: .seconds(20))
        let warmB = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "b", "OUTCOME": "ok"], after: mark, timeout: .seconds(60))
        #expect(warmB["MODEL"] == "beta")
        let betaNext = try await OpenAIAgentClient.send(baseURL: router.backendURL, request: files["b"]!, messages: ["Another question?"])[0]
        figures.append("beta, a new conversation after kvwarm warmed it: \(betaNext)")
        #expect(betaNext.cached >= warmB.int("PROMPT_TOKENS") - 2, "\(betaNext)")
        let st = try await router.statuses()
        #expect(st["alpha"] == "unloaded" && st["beta"] == "loaded", "kvwarm did not undo the eviction: \(st)")

        // status names each model; an unloaded one is not a fault
        let status = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", ws.config])
        #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.contains("default/alpha") && status.stdout.contains("model not loaded"), "\(status.stdout)")
        #expect(kv.stop() == 0)
        print("router figures:\n  " + figures.joined(separator: "\n  "))
    }
}
