import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// SIGTERM during a long warm (during the startup warm: STOPPING=1, no READY=1, exit 0), and a
/// storm of SIGHUPs.
@Suite struct HostileSignalTests {
    @Test func sigtermDuringThirtySecondWarmExitsWithinTwoSeconds() async throws {
        let dir = try TemporaryDirectory("kvsig")
        defer { dir.remove() }
        // ~300 tokens at 100 ms each: a 30 s prefill
        let fake = try await FakeLlamaServerProcess.start(arguments: ["--prefill-ms-per-token", "100"])
        defer { fake.stop() }
        try dir.write("tpl/fast.txt", Hostile.text("FAST", words: 10))
        try dir.write("tpl/slow.txt", Hostile.text("SLOW", words: 300))
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["fast": dir.file("tpl/fast.txt"), "slow": dir.file("tpl/slow.txt")],
                                             backend: ["timeout_seconds": 120])
        let kv = try Hostile.run(config, dir)
        try await Hostile.eventually("the slow warm is in flight", timeout: .seconds(30)) {
            !Hostile.completions(try await fake.requests(path: "/completion"), marker: "SLOW").isEmpty
        }
        try await Task.sleep(for: .milliseconds(500))
        let started = ContinuousClock.now
        kv.signal(SIGTERM)
        let status = kv.stop()
        let took = started.duration(to: .now)
        #expect(status == 0)
        #expect(took < .seconds(2), "took \(took)")
        #expect(kv.notifyMessages.contains { $0.contains("STOPPING=1") })
        #expect(!kv.notifyMessages.contains { $0.contains("READY=1") }, "the startup warm never finished")
        print("SIGTERM during a 30 s warm: exit \(status) after \(took)")
        let state = try JSONDecoder.iso.decode(WarmState.self, from: Data(contentsOf: URL(fileURLWithPath: dir.file("state/state.json"))))
        #expect(state.templates["fast"]?.kvFile != nil)
        #expect(state.templates["slow"]?.kvFile == nil, "an interrupted warm recorded a KV file")
        #expect(Hostile.files(dir.file("state")).allSatisfy { !$0.hasPrefix("state.json.tmp-") })
        #expect(Hostile.files(fake.slotSavePath).allSatisfy { !$0.hasSuffix(".partial") })
    }

    @Test func fiftySighupsInOneSecondCoalesce() async throws {
        let dir = try TemporaryDirectory("kvsig")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start(arguments: ["--prefill-ms-per-token", "1"])
        defer { fake.stop() }
        try dir.write("tpl/a.txt", Hostile.text("HUP", words: 100))
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": dir.file("tpl/a.txt")])
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        // a ~4 s warm in flight (100 tokens at 40 ms) as well: the reload service absorbs a burst
        // (100 ms quiet, at most 1 s) into one reload, and signals during a reload into one more.
        _ = try await fake.transport().send(HTTPRequest(method: "POST", path: "/__control",
                                                        body: Array(#"{"prefill_ms_per_token": 40}"#.utf8), timeout: .seconds(5)))
        try dir.write("tpl/a.txt", Hostile.text("HUP-EDITED", words: 100))
        try await Hostile.eventually("edit warm in flight", timeout: .seconds(10)) {
            !Hostile.completions(try await fake.requests(path: "/completion"), marker: "HUP-EDITED").isEmpty
        }
        let mark = kv.notifyMessages.count
        // on a loaded machine this loop can stall past the 100 ms quiet period, which rightly ends a
        // burst: such stalls are counted and allowed for
        var stalls = 0
        var last = ContinuousClock.now
        for _ in 0..<50 {
            kv.signal(SIGHUP)
            if last.duration(to: .now) >= .milliseconds(100) { stalls += 1 }
            last = .now
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .seconds(4))
        #expect(kv.process.isRunning)
        let reloads = kv.notifyMessages.dropFirst(mark).filter { $0.contains("RELOADING=1") }.count
        let readies = kv.notifyMessages.dropFirst(mark).filter { $0.contains("READY=1") }.count
        print("50 SIGHUPs in 1 s: \(reloads) reloads, \(stalls) stalls of the sender over 100 ms")
        #expect(reloads >= 1 && reloads <= 3 + stalls, "\(reloads) reloads: the signals did not coalesce")
        try await kv.wait("READY after the last reload", timeout: .seconds(20)) {
            let tail = kv.notifyMessages.dropFirst(mark)
            return tail.filter { $0.contains("READY=1") }.count == tail.filter { $0.contains("RELOADING=1") }.count ? true : nil
        }
        // still works
        let recMark = kv.logRecords.count
        try dir.write("tpl/a.txt", Hostile.text("HUP-AFTER", words: 100))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], after: recMark, timeout: .seconds(20))
        #expect(kv.stop() == 0)
    }
}
