import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// Backend faults at startup and mid-run: each is classified in the log (OUTCOME + REASON),
/// retried with backoff where a retry can help, never crashes the daemon, and stays under a
/// bounded number of requests per minute per template.
///
/// The bound: the retry backoff (Sources/KVWarm/Warm/Backoff.swift, 1 s doubling, equal jitter
/// (uniform in [d/2, d]), capped at 30 s) allows at most 1 + 4 attempts in the first 12 s
/// (minimum delays 0.5, 1, 2, 4 s) and at most 9 in any first minute (then ≤ 4/min at the
/// cap). An attempt sends at most 3 requests that carry the template (/apply-template,
/// /tokenize, /completion, save/restore count separately below), so the tests assert
/// ≤ 27 template requests per 60 s, and measure ≤ 15 over a 12 s persistent fault.
@Suite struct HostileBackendFaultTests {
    struct Case: Sendable, CustomStringConvertible {
        var id: String
        var faults: String  // JSON, set fresh for each phase
        var outcome: String
        var reason: String
        /// The fault hits a restore: phase A restarts kvwarm over a saved KV file, phase B touches the file.
        var restore = false
        /// Extra `backend` keys.
        var backend: [String: Double] = [:]
        var description: String { id }
    }

    static let cases: [Case] = [
        Case(id: "500", faults: #"{"status": {"status": 500, "path": "/completion", "times": 2}}"#, outcome: "failed", reason: "http_500"),
        Case(id: "401", faults: #"{"status": {"status": 401, "path": "/completion", "times": 1}}"#, outcome: "failed", reason: "unauthorized"),
        Case(id: "503-loading", faults: #"{"loading": {"seconds": 1.5, "path": "/completion"}}"#, outcome: "failed", reason: "loading"),
        Case(id: "hang-past-timeout", faults: #"{"hang": {"seconds": 4, "path": "/completion", "times": 1}}"#, outcome: "failed", reason: "timeout"),
        Case(id: "reset-mid-body", faults: #"{"reset": {"path": "/completion", "times": 1}}"#, outcome: "failed", reason: "connection_broken"),
        // twice: a request that dies on a reused keep-alive connection is resent once by curl
        // on a fresh one (a server closing an idle connection looks like this)
        Case(id: "close-no-response", faults: #"{"close": {"path": "/apply-template", "times": 2}}"#, outcome: "failed", reason: "connection_broken"),
        Case(id: "malformed-json", faults: #"{"malformed": {"path": "/completion", "times": 1}}"#, outcome: "failed", reason: "malformed_response"),
        // mid-run, /props is read by the backend check's full fingerprint read: make it every check
        Case(id: "malformed-props", faults: #"{"malformed": {"path": "/props", "times": 1}}"#, outcome: "failed", reason: "malformed_response",
             backend: ["fingerprint_check_seconds": 1]),
        Case(id: "restore-400", faults: #"{"restore_400": {"times": 1}}"#, outcome: "ok", reason: "restore_refused", restore: true),
        Case(id: "save-500", faults: #"{"save_500": {"times": 1}}"#, outcome: "failed", reason: "http_500"),
        Case(id: "save-enospc", faults: #"{"save_enospc": {"times": 1}}"#, outcome: "failed", reason: "http_500"),
        Case(id: "short-n-saved", faults: #"{"short_n_saved": {"times": 2}}"#, outcome: "failed", reason: "short_save"),
        Case(id: "low-cache-n", faults: #"{"low_cache_n": {"times": 1}}"#, outcome: "ineffective", reason: "restore_ineffective", restore: true),
    ]

    static func faults(_ json: String) -> [String: Any] {
        try! JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
    }

    @Test(arguments: cases)
    func faultAtStartupAndMidRun(_ c: Case) async throws {
        let dir = try TemporaryDirectory("kvfault")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        let marker = "FAULT-\(c.id)"
        try dir.write("tpl/a.txt", Hostile.text(marker))
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": dir.file("tpl/a.txt")],
                                             backend: c.backend.merging(["timeout_seconds": 1]) { $1 })
        if c.restore {
            // a clean first run leaves a KV file for the faulted restore
            let first = try Hostile.run(config, dir)
            try await first.awaitNotify("READY=1", timeout: .seconds(30))
            #expect(first.stop() == 0)
        }
        // phase A: the fault is there from the first request
        try await fake.setFaults(Self.faults(c.faults))
        let kv = try Hostile.run(config, dir)
        let match = ["OUTCOME": c.outcome, "REASON": c.reason]
        let a = try await kv.awaitRecord(match, timeout: .seconds(30))
        #expect(a["STAGE"] != nil && a["MESSAGE"]?.isEmpty == false, "\(a)")
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(30))

        // phase B: mid-run
        try await Task.sleep(for: .milliseconds(300))
        let mark = kv.logRecords.count
        try await fake.setFaults(Self.faults(c.faults))
        if c.restore && c.id != "low-cache-n" {
            // same content, same backend: a touch re-warms by restore
            try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: dir.file("tpl/a.txt"))
            try await kv.awaitRecord(match, after: mark, timeout: .seconds(30))
        } else if c.id == "low-cache-n" {
            // kvwarm learnt that restores do not take under this backend: it prefills instead of retrying them
            try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: dir.file("tpl/a.txt"))
            let h = try await kv.awaitRecord(["STAGE": "hash", "TEMPLATE": "a"], after: mark, timeout: .seconds(30))
            #expect(h["MODE"] == "prefill" && h["REASON"] == "restores do not take on this backend", "\(h)")
        } else {
            try dir.write("tpl/a.txt", Hostile.text(marker + "-EDITED"))
            try await kv.awaitRecord(match, after: mark, timeout: .seconds(30))
        }
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], after: mark, timeout: .seconds(30))

        #expect(kv.process.isRunning)
        let reqs = try await fake.requests()
        let perTemplate = reqs.filter { Hostile.bodyText($0).contains(marker) }
        #expect(Hostile.maxInWindow(perTemplate, window: 60) <= 27, "\(perTemplate.count) template requests")
        // a failed save never leaves a partial file behind
        // (the warm record precedes the save and its rename: give the persist stage a moment)
        try await Hostile.eventually("no partial KV file", timeout: .seconds(5)) {
            Hostile.files(fake.slotSavePath).allSatisfy { !$0.hasSuffix(".partial") }
        }
        #expect(kv.stop() == 0)
    }

    /// A fault that never clears: the retries back off (no hot loop) and the daemon stays up.
    @Test(arguments: [
        #"{"status": {"status": 500, "path": "/completion"}}"#,
        #"{"status": {"status": 401, "path": "/completion"}}"#,
        #"{"reset": {"path": "/completion"}}"#,
        #"{"malformed": {"path": "/apply-template"}}"#,
    ])
    func persistentFaultBacksOff(_ faults: String) async throws {
        let dir = try TemporaryDirectory("kvfault")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        try await fake.setFaults(Self.faults(faults))
        try dir.write("tpl/a.txt", Hostile.text("PERSISTENT"))
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": dir.file("tpl/a.txt")])
        let kv = try Hostile.run(config, dir)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        #expect(ready.contains("(1 failed)"), "\(ready)")
        try await Task.sleep(for: .seconds(12))
        #expect(kv.process.isRunning)
        let reqs = try await fake.requests()
        let perTemplate = reqs.filter { Hostile.bodyText($0).contains("PERSISTENT") }
        let completions = perTemplate.filter { ($0["route"] as? String) == "/completion" || ($0["route"] as? String) == "/apply-template" }
        let attempts = Set(completions.compactMap { $0["route"] as? String }).count == 1 ? completions.count : completions.count / 2
        #expect(perTemplate.count <= 15, "\(perTemplate.count) template requests in 12 s")
        // the startup attempt, 4 retries (minimum delays 0.5, 1, 2, 4 s) and at most one re-warm of the
        // first backend check: a pass that failed transiently left no fingerprint, which the check reads
        // as a backend to warm anew
        #expect(attempts <= 6 && attempts >= 2, "\(attempts) attempts in 12 s: no backoff, or no retry")
        // everything else is the backend monitor (≤ 4 per 1 s check: health, props, models, slots) and each
        // attempt's fingerprint re-read (≤ 4): well under 8 per second; a hot loop would be thousands
        #expect(reqs.count <= perTemplate.count + 12 * 8, "\(reqs.count) requests in all")
        let retries = Hostile.records(kv, ["STAGE": "warm", "TEMPLATE": "a", "MESSAGE_ID": "a18f420f9ee341ecae4f1a8242ba6136"])
        #expect(retries.allSatisfy { $0["REASON"] != nil && $0["OUTCOME"] != nil || $0["RETRY_IN_MS"] != nil }, "\(retries)")
        print("persistent fault \(faults): \(perTemplate.count) template requests, \(attempts) attempts, \(reqs.count) requests in all over 12 s")
        #expect(kv.stop() == 0)
    }

    /// Nothing listening: at startup (degraded, then warms when the server appears) and mid-run.
    @Test func nothingListeningAtStartupAndMidRun() async throws {
        let dir = try TemporaryDirectory("kvfault")
        defer { dir.remove() }
        let port = try LlamaServerFixture.freePort()
        try dir.write("tpl/a.txt", Hostile.text("UNREACHABLE"))
        let slots = dir.file("slots")
        try FileManager.default.createDirectory(atPath: slots, withIntermediateDirectories: true)
        let config = try Hostile.writeConfig(dir, url: "http://127.0.0.1:\(port)", slotDir: slots,
                                             templates: ["a": dir.file("tpl/a.txt")],
                                             extra: ["startup": ["backend_wait_seconds": 1, "on_unavailable": "degraded"]])
        let kv = try Hostile.run(config, dir)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        #expect(ready.contains("degraded"))
        try await kv.awaitRecord(["STAGE": "startup", "OUTCOME": "failed", "REASON": "unreachable"], timeout: .seconds(30))
        try await Task.sleep(for: .seconds(2))
        var fake = try await FakeLlamaServerProcess.start(arguments: ["--port", "\(port)", "--slot-save-path", slots])
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(30))

        // mid-run: the server goes away, the template changes, the server comes back
        let mark = kv.logRecords.count
        fake.stop()
        try await kv.awaitRecord(["STAGE": "backend", "OUTCOME": "failed", "REASON": "unreachable"], after: mark, timeout: .seconds(10))
        try dir.write("tpl/a.txt", Hostile.text("UNREACHABLE-EDITED"))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "failed", "REASON": "unreachable"], after: mark, timeout: .seconds(10))
        try await Task.sleep(for: .seconds(3))
        fake = try await FakeLlamaServerProcess.start(arguments: ["--port", "\(port)", "--slot-save-path", slots])
        defer { fake.stop() }
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], after: mark, timeout: .seconds(40))
        #expect(kv.process.isRunning)
        let attempts = Hostile.records(kv, ["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "failed"]).count
        #expect(attempts <= 6, "\(attempts) failed attempts while the backend was away")
        #expect(kv.stop() == 0)
    }

    /// A fingerprint that differs between two calls: classified, and no re-warm storm (before the
    /// fix in BackendMonitor every 1 s check re-prefilled every template: 9 prefills in 10 s).
    @Test func fingerprintFlipDoesNotLoop() async throws {
        let dir = try TemporaryDirectory("kvfault")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        try dir.write("tpl/a.txt", Hostile.text("FLIP"))
        // the full fingerprint at every 1 s check (the default reads it every 60 s when /slots looks the same)
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: ["a": dir.file("tpl/a.txt")],
                                             backend: ["fingerprint_check_seconds": 1])
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "a", "OUTCOME": "ok"], timeout: .seconds(10))
        let seen = try await fake.requests().count
        try await fake.setFaults(["fingerprint_flip": ["mode": "alternate", "n_ctx": 2048]])
        try await Task.sleep(for: .seconds(10))
        let rec = Hostile.records(kv, ["STAGE": "backend", "OUTCOME": "failed", "REASON": "fingerprint_unstable"])
        #expect(rec.count == 1, "the flip is not classified, or classified at every check")
        let reqs = try await fake.requests(since: seen)
        let warms = Hostile.completions(reqs, marker: "FLIP")
        print("fingerprint flip: \(warms.count) completions in 10 s; records: \(rec.map { $0["REASON"] ?? "" })")
        #expect(warms.count <= 1, "\(warms.count) completions in 10 s: a re-warm storm")
        // a real change (stable across reads) still re-warms
        try await fake.setFaults(["fingerprint_flip": ["mode": "permanent", "n_ctx": 2048]])
        try await kv.awaitRecord(["STAGE": "backend", "OUTCOME": "ok", "REASON": "fingerprint_changed"], timeout: .seconds(10))
        try await Hostile.eventually("re-warm after a stable change") {
            Hostile.completions(try await fake.requests(since: seen), marker: "FLIP").count > warms.count
        }
        #expect(kv.process.isRunning)
        #expect(kv.stop() == 0)
    }
}
