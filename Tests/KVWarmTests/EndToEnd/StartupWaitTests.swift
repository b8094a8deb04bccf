import Foundation
@testable import KVWarm
import KVWarmTestSupport
import Testing

/// Boot order: a `backend.slot_save_dir` that llama-server has not created yet is waited for
/// like a backend that is not up (not a bad config), and said so.
@Suite(.timeLimit(.minutes(2))) struct StartupWaitTests {
    @Test func aSlotDirectoryThatDoesNotExistYetIsWaitedFor() async throws {
        let dir = try TemporaryDirectory("kvwait")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        // llama-server has not made its slot directory yet
        let hidden = fake.slotSavePath + ".later"
        try FileManager.default.moveItem(atPath: fake.slotSavePath, toPath: hidden)
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": try dir.write("tpl/a.txt", Hostile.text("LATEDIR"))],
                                             extra: ["startup": ["backend_wait_seconds": 30]])
        let check = try await ProcessRunner.run(KVWarmProcess.binary, ["check", "--config", config])
        #expect(check.status == 0, "not a bad config: \(check.stderr)")
        let kv = try Hostile.run(config, dir)
        let waiting = try await kv.awaitRecord(["MESSAGE_ID": MessageID.backendWaiting.rawValue], timeout: .seconds(20))
        #expect(waiting["REASON"] == "slot_save_dir_missing", "\(waiting)")
        #expect(waiting["MESSAGE"]?.contains(fake.slotSavePath) == true)
        let status = try await kv.awaitNotify("slot_save_dir_missing", timeout: .seconds(10))
        #expect(status.contains("EXTEND_TIMEOUT_USEC"), "\(status)")
        #expect(kv.notifyMessages.allSatisfy { !$0.contains("READY=1") })
        try FileManager.default.moveItem(atPath: hidden, toPath: fake.slotSavePath)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(20))
        #expect(ready.contains("watching 1 template (0 failed)"), "\(ready)")
        #expect(kv.stop() == 0)
    }
}
