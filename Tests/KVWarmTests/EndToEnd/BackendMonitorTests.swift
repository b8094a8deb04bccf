import Foundation
@testable import KVWarm
import KVWarmTestSupport
import Testing

/// The backend check: one `GET /slots` per interval while nothing changes; the full fingerprint
/// when something looks different; a restart seen from task ids alone.
@Suite(.timeLimit(.minutes(2))) struct BackendMonitorTests {
    static func slot(_ id: Int, nCtx: Int = 4096, task: Int? = nil) -> LlamaClient.SlotInfo {
        LlamaClient.SlotInfo(id: id, nCtx: nCtx, isProcessing: false, idTask: task, promptTokens: nil)
    }

    /// A fake server on a fixed port (so it can be replaced) and kvwarm on it with one template,
    /// READY; `restart` starts a new fake server on the same port and slot directory.
    static func readyOnRestartablePort(_ dir: TemporaryDirectory, text: String, checkEvery: Int) async throws
        -> (FakeLlamaServerProcess, @Sendable () async throws -> FakeLlamaServerProcess, KVWarmProcess) {
        let port = try LlamaServerFixture.freePort()
        let slots = dir.file("slots")
        try FileManager.default.createDirectory(atPath: slots, withIntermediateDirectories: true)
        let restart: @Sendable () async throws -> FakeLlamaServerProcess = {
            try await FakeLlamaServerProcess.start(arguments: ["--port", "\(port)", "--slot-save-path", slots])
        }
        let fake = try await restart()
        let config = try Hostile.writeConfig(dir, url: "http://127.0.0.1:\(port)", slotDir: slots,
                                             templates: ["a": try dir.write("tpl/a.txt", Hostile.text(text))],
                                             backend: ["check_interval_seconds": checkEvery])
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        return (fake, restart, kv)
    }

    /// Within `within` after record `mark`: the monitor's restart record, then template a restored.
    static func expectRestartRestores(_ kv: KVWarmProcess, after mark: Int, within: Duration) async throws {
        let rec = try await kv.awaitRecord(["STAGE": "backend", "OUTCOME": "ok"], after: mark, timeout: within)
        #expect(rec["REASON"] == "restarted")
        let warm = try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], after: mark, timeout: .seconds(10))
        #expect(warm["MODE"] == "restore")
    }

    static let fingerprint = BackendFingerprint(
        modelPath: "/m.gguf", totalSlots: 2, nCtx: 4096, chatTemplateSHA256: "t", nParams: 1, modelSize: 1,
        nVocab: 1, nEmbd: 1, nCtxTrain: 1, kvTag: nil, build: "b1")

    @Test func taskIdsGoingBackwardsOrVanishingIsARestart() {
        var c = TaskCounter()
        do { let r = c.observe([Self.slot(0, task: 5), Self.slot(1)]); #expect(!r, "the first observation is the baseline") }
        do { let r = c.observe([Self.slot(0, task: 9), Self.slot(1, task: 7)]); #expect(!r) }
        do { let r = c.observe([Self.slot(0, task: 2), Self.slot(1)]); #expect(r, "ids went backwards") }
        do { let r = c.observe([Self.slot(0, task: 3), Self.slot(1)]); #expect(!r) }
        do { let r = c.observe([Self.slot(0), Self.slot(1)]); #expect(r, "a fresh server has no task ids") }
    }

    @Test func slotShapeIsComparedWithTheFingerprint() {
        let fp = Self.fingerprint
        #expect(!BackendCheck.shapeDiffers([Self.slot(0), Self.slot(1)], from: fp))
        #expect(BackendCheck.shapeDiffers([Self.slot(0), Self.slot(1), Self.slot(2)], from: fp), "slot count")
        #expect(BackendCheck.shapeDiffers([Self.slot(0), Self.slot(1, nCtx: 8192)], from: fp), "per-slot context")
        #expect(!BackendCheck.shapeDiffers([Self.slot(0, nCtx: 0), Self.slot(1, nCtx: 0)], from: fp),
                "a server that does not report n_ctx is not a change")
    }

    static func requestsSince(_ fake: FakeLlamaServerProcess, _ seen: Int) async throws -> [String] {
        try await fake.requests().dropFirst(seen).map { "\($0["method"] as? String ?? "") \($0["route"] as? String ?? "")" }
    }

    @Test func anIdleCheckIsOneSlotsRequest() async throws {
        let dir = try TemporaryDirectory("kvmonitor")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": try dir.write("tpl/a.txt", Hostile.text("IDLE"))],
                                             backend: ["check_interval_seconds": 0.3])
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        // the first check after READY reads the full fingerprint; from then on /slots alone
        try await Hostile.eventually("first check done") {
            try await Self.requestsSince(fake, 0).filter { $0 == "GET /props" }.count >= 2
        }
        let seen = try await fake.requests().count
        try await Hostile.eventually("eight more checks") {
            try await Self.requestsSince(fake, seen).count >= 8
        }
        let reqs = try await Self.requestsSince(fake, seen)
        #expect(Set(reqs) == ["GET /slots"], "\(reqs)")
        #expect(kv.stop() == 0)
    }

    @Test func withoutASlotsEndpointTheCheckReadsHealthAndTheFingerprint() async throws {
        let dir = try TemporaryDirectory("kvmonitor")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start(arguments: ["--no-slots"])
        defer { fake.stop() }
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": try dir.write("tpl/a.txt", Hostile.text("NOSLOTS"))],
                                             backend: ["check_interval_seconds": 0.3])
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        let seen = try await fake.requests().count
        try await Hostile.eventually("three checks") {
            try await Self.requestsSince(fake, seen).filter { $0 == "GET /health" }.count >= 3
        }
        let reqs = try await Self.requestsSince(fake, seen)
        #expect(reqs.contains("GET /props") && reqs.contains("GET /v1/models"), "\(reqs)")
        #expect(Hostile.records(kv, ["STAGE": "backend", "OUTCOME": "ok"]).isEmpty, "no restart is imagined")
        #expect(kv.stop() == 0)
    }

    /// A server restarted between two checks (never seen down): the fresh task ids give it away,
    /// and every template is restored from its KV file.
    @Test func aRestartBetweenTwoChecksIsSeenFromTaskIds() async throws {
        let dir = try TemporaryDirectory("kvmonitor")
        defer { dir.remove() }
        // 10 s between checks: a fake server restarted on a loaded machine (the unit stage runs
        // the crash-safety cycles next to this) has taken over 4 s to listen again
        let (first, restart, kv) = try await Self.readyOnRestartablePort(dir, text: "QUICK", checkEvery: 10)
        var fake = first
        // right after a check, replace the server: the next check is ~10 s away
        let seen = try await fake.requests().count
        try await Hostile.eventually("a check after READY", timeout: .seconds(15)) {
            try await Self.requestsSince(fake, seen).contains("GET /slots")
        }
        let mark = kv.logRecords.count
        fake.stop()
        fake = try await restart()
        defer { fake.stop() }
        try await Self.expectRestartRestores(kv, after: mark, within: .seconds(25))
        #expect(Hostile.records(kv, ["STAGE": "backend", "OUTCOME": "failed"]).isEmpty,
                "the check never saw the backend down: the task ids told")
        #expect(kv.stop() == 0)
    }

    /// While the backend is down it is probed every second, so a server that comes back is
    /// re-warmed at once, not a whole `check_interval_seconds` later.
    @Test func aBackendThatComesBackIsSeenWithinAboutASecond() async throws {
        let dir = try TemporaryDirectory("kvmonitor")
        defer { dir.remove() }
        let (first, restart, kv) = try await Self.readyOnRestartablePort(dir, text: "BACKSOON", checkEvery: 10)
        var fake = first
        fake.stop()
        try await kv.awaitRecord(["STAGE": "backend", "OUTCOME": "failed"], timeout: .seconds(15))
        let mark = kv.logRecords.count
        fake = try await restart()
        defer { fake.stop() }
        let up = ContinuousClock.now
        // with the configured 10 s this takes up to 10 s; probing every second while down, about 1 s
        try await Self.expectRestartRestores(kv, after: mark, within: .seconds(4))
        #expect(up.duration(to: .now) < .seconds(8))
        #expect(kv.stop() == 0)
    }

    /// A server restarted right after READY, before any periodic check: the first check runs
    /// at READY and records the task ids, so the next one tells the new process apart.
    @Test func aRestartRightAfterReadyIsNotMissed() async throws {
        let dir = try TemporaryDirectory("kvmonitor")
        defer { dir.remove() }
        let (first, restart, kv) = try await Self.readyOnRestartablePort(dir, text: "EARLY", checkEvery: 3)
        var fake = first
        let mark = kv.logRecords.count
        fake.stop()
        fake = try await restart()
        defer { fake.stop() }
        try await Self.expectRestartRestores(kv, after: mark, within: .seconds(15))
        #expect(kv.stop() == 0)
    }
}
