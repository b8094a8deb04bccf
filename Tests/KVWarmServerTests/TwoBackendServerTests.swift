import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// One kvwarm, two single-model llama-servers (`backends`): a dead backend does not hold up
/// the other's warm, and a restart of one re-warms only its templates. The real `openai`
/// client's `timings` are the evidence.
@Suite(.serialized, .enabled(if: LlamaServerFixture.isAvailable && OpenAIAgentClient.isAvailable,
                             "run .ci/provision first (llama-server, model, openai venv)"))
struct TwoBackendServerTests {
    static func options() -> LlamaServerFixture.Options {
        var o = LlamaServerFixture.Options()
        o.contextSize = 4096
        o.parallel = 2
        return o
    }

    static func body(topic: String) -> [String: Any] {
        ["model": "m", "max_tokens": 1, "temperature": 0,
         "messages": [["role": "system", "content": templateText(topic: topic, sentences: 30, placeholder: false)],
                      ["role": "user", "content": "<{message}>"]]]
    }

    @Test func aRestartOfOneBackendReWarmsOnlyItsTemplates() async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        let slots0 = ws.dir.file("slots0"), slots1 = ws.dir.file("slots1")
        for d in [slots0, slots1] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let gpu0 = try await LlamaServerFixture(slotDir: slots0, logPath: ws.dir.file("gpu0.log"), options: Self.options())
        defer { gpu0.stop() }
        let port1 = try LlamaServerFixture.freePort()
        let files = ["g0": ws.templates + "/g0.json", "g1": ws.templates + "/g1.json"]
        try JSONSerialization.data(withJSONObject: Self.body(topic: "ship engines")).write(to: URL(fileURLWithPath: files["g0"]!))
        try JSONSerialization.data(withJSONObject: Self.body(topic: "tea gardens")).write(to: URL(fileURLWithPath: files["g1"]!))
        let config: [String: Any] = [
            "backends": [
                "gpu0": ["url": gpu0.backendURL, "slot_save_dir": slots0, "check_interval_seconds": 1],
                "gpu1": ["url": "http://127.0.0.1:\(port1)", "slot_save_dir": slots1, "check_interval_seconds": 1],
            ],
            "state_dir": ws.state, "debounce_ms": 100, "startup": ["backend_wait_seconds": 8],
            "templates": ["g0": ["path": files["g0"]!, "backend": "gpu0"], "g1": ["path": files["g1"]!, "backend": "gpu1"]],
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: ws.config))

        // gpu1 is not up yet: gpu0's template is warmed at once, READY waits for gpu1's deadline
        let kv = try ws.startKVWarm()
        let warm0 = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "g0", "OUTCOME": "ok"], timeout: .seconds(60))
        #expect(warm0["BACKEND"] == "gpu0")
        #expect(kv.notifyMessages.allSatisfy { !$0.contains("READY=1") }, "READY waits for gpu1's startup deadline")
        let r0 = try await OpenAIAgentClient.send(baseURL: gpu0.backendURL, request: files["g0"]!, messages: ["Why?"])[0]
        #expect(r0.cached >= warm0.int("PROMPT_TOKENS") - 2, "gpu0 is warm while gpu1 is down: \(r0)")
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        #expect(ready.contains("gpu1: degraded"), "\(ready)")

        var gpu1: LlamaServerFixture? = try await LlamaServerFixture(slotDir: slots1, logPath: ws.dir.file("gpu1.log"),
                                                                   options: Self.options(), port: port1)
        defer { gpu1?.stop() }
        let warm1 = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "g1", "OUTCOME": "ok"], timeout: .seconds(30))
        #expect(warm1["BACKEND"] == "gpu1" && warm1["MODE"] == "prefill")

        // gpu1 restarts: only g1 is re-warmed, by restore
        let mark = kv.logRecords.count
        gpu1!.stop()
        gpu1 = try await LlamaServerFixture(slotDir: slots1, logPath: ws.dir.file("gpu1b.log"), options: Self.options(), port: port1)
        let again = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "g1", "OUTCOME": "ok"], after: mark, timeout: .seconds(30))
        #expect(again["MODE"] == "restore")
        let r1 = try await OpenAIAgentClient.send(baseURL: gpu1!.backendURL, request: files["g1"]!, messages: ["Why?"])[0]
        #expect(r1.cached >= warm1.int("PROMPT_TOKENS") - 2, "\(r1)")
        let after = kv.logRecords.dropFirst(mark)
        #expect(!after.contains { $0["STAGE"] == "warm" && $0["TEMPLATE"] == "g0" }, "gpu0's template was left alone")
        #expect(after.filter { $0["STAGE"] == "backend" }.allSatisfy { $0["BACKEND"] == "gpu1" },
                "\(after.filter { $0["STAGE"] == "backend" })")
        #expect(FileManager.default.fileExists(atPath: ws.state + "/state.gpu0.json"))
        #expect(FileManager.default.fileExists(atPath: ws.state + "/state.gpu1.json"))
        #expect(kv.stop() == 0)
        print("two backends: gpu0 first request while gpu1 was down \(r0); gpu1 first request after its restart \(r1)")
    }
}
