import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// The guard against server settings that make a warm short-lived, on the real llama-server:
/// with its default slots (-np auto: unified KV, --cache-idle-slots) kvwarm says so once, in
/// STATUS and in `kvwarm status`; with an explicit -np it stays quiet.
@Suite(.serialized, .enabled(if: LlamaServerFixture.isAvailable, "run .ci/provision first"))
struct SlotPolicyServerTests {
    @Test(arguments: [nil, 4] as [Int?])
    func theGuardFiresOnlyWhenTheServerClearsIdleSlots(parallel: Int?) async throws {
        let ws = try Workspace()
        defer { ws.dir.remove() }
        var opts = LlamaServerFixture.Options()
        opts.parallel = parallel
        let server = try await LlamaServerFixture(slotDir: ws.slots, logPath: ws.dir.file("server.log"), options: opts)
        defer { server.stop() }
        for n in ["one", "two"] {
            try templateText(topic: "policy \(n)", sentences: 12).write(toFile: ws.templates + "/\(n).txt", atomically: true, encoding: .utf8)
        }
        try ws.writeConfig(backend: server.backendURL, templates: ["one": ws.templates + "/one.txt", "two": ws.templates + "/two.txt"])
        let kv = try ws.startKVWarm()
        let ready = try await kv.awaitNotify("READY=1")
        try await kv.awaitRecord(["MESSAGE_ID": MessageID.startupReady.rawValue], timeout: .seconds(10))
        let guards = kv.logRecords.filter { $0["MESSAGE_ID"] == MessageID.idleSlotsCleared.rawValue }
        let status = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", ws.config, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let text = try await ProcessRunner.run(KVWarmProcess.binary, ["status", "--config", ws.config])
        if parallel == nil {
            #expect(guards.count == 1, "said once: \(guards)")
            #expect(guards.first?["HINT"]?.contains("-np") == true)
            #expect(ready.contains("llama-server clears idle slots"), "\(ready)")
            #expect(json?["idle_slots_cleared"] as? Bool == true)
            #expect(text.stdout.contains("clears idle slots"), "\(text.stdout)")
        } else {
            #expect(guards.isEmpty, "\(guards)")
            #expect(!ready.contains("clears idle slots"))
            #expect(json?["idle_slots_cleared"] as? Bool == false)
        }
        #expect(kv.stop() == 0)
    }
}
