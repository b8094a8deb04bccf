import Foundation
@testable import KVWarm
import KVWarmTestSupport
import Testing

/// `kvwarm reload` (the unit's `ExecReload=`): returns once the daemon's reload is done, and
/// fails when it was rejected.
@Suite(.timeLimit(.minutes(2))) struct ReloadCommandTests {
    @Test func reloadWaitsForTheReloadAndFailsWhenItIsRejected() async throws {
        let dir = try TemporaryDirectory("kvreload")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        let a = try dir.write("tpl/a.txt", Hostile.text("RELOAD-A"))
        var config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: ["a": a])
        let none = try await ProcessRunner.run(KVWarmProcess.binary, ["reload", "--config", config])
        #expect(none.status == 3, "no daemon: \(none.stderr)")

        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        // a new template: the reload is done only once it is warm
        let b = try dir.write("tpl/b.txt", Hostile.text("RELOAD-B"))
        config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: ["a": a, "b": b])
        let ok = try await ProcessRunner.run(KVWarmProcess.binary, ["reload", "--config", config])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("reloaded: watching 2 templates (0 failed)"), "\(ok.stdout)")
        // (the watcher's first look at b's new watch may add a restore of it later)
        #expect(Hostile.records(kv, ["STAGE": "warm", "TEMPLATE": "b", "OUTCOME": "ok"]).count >= 1,
                "b was warm when reload returned")

        // the daemon's config is now broken: the command finds the daemon by its state directory
        // (the unit's ExecReload= through $STATE_DIRECTORY), and the daemon rejects the file
        try "{ not json".write(toFile: config, atomically: true, encoding: .utf8)
        let rejected = try await ProcessRunner.run(KVWarmProcess.binary, ["reload", "--state-dir", dir.file("state")])
        #expect(rejected.status == 1, "\(rejected.stdout) \(rejected.stderr)")
        #expect(rejected.stderr.contains("reload rejected") && rejected.stderr.contains("syntax error"), "\(rejected.stderr)")
        #expect(kv.stop() == 0)
    }
}
