import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// inotify overflow, a deleted and recreated template directory, and a thousand templates.
@Suite struct HostileEventStormTests {
    @Test func overflowRescansAndWarmsEachFinalContentOnce() async throws {
        let dir = try TemporaryDirectory("kvstorm")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        let names = (0..<5).map { "t\($0)" }
        var templates: [String: Any] = [:]
        for n in names { templates[n] = try dir.write("tpl/\(n).txt", Hostile.text("STORM-\(n)-V0")) }
        templates["moved"] = try dir.write("tpl2/moved.txt", Hostile.text("MOVED-V0"))
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: templates)
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(30))
        let seen = try await fake.requests().count

        // stop kvwarm so the kernel queue (fs.inotify.max_queued_events, 16384 by default) overflows
        kv.signal(SIGSTOP)
        var events = 0
        for i in 0..<10_000 {  // create + delete = 2 events each
            let junk = dir.file("tpl/junk-\(i % 50).tmp")
            _ = FileManager.default.createFile(atPath: junk, contents: nil)
            unlink(junk)
            events += 2
        }
        for v in 1...5 {
            for n in names { try dir.write("tpl/\(n).txt", Hostile.text("STORM-\(n)-V\(v)")) }
        }
        kv.signal(SIGCONT)
        try await kv.awaitRecord(["MESSAGE_ID": MessageID.watchOverflow.rawValue], timeout: .seconds(20))
        for n in names {
            try await kv.awaitRecord(["STAGE": "persist", "TEMPLATE": n, "OUTCOME": "ok"], after: 0, timeout: .seconds(30))
        }
        try await Hostile.eventually("every final content warmed") {
            let reqs = try await fake.requests(since: seen)
            return names.allSatisfy { !Hostile.completions(reqs, marker: "STORM-\($0)-V5").isEmpty }
        }
        try await Task.sleep(for: .seconds(1))  // let any duplicate show up
        var reqs = try await fake.requests(since: seen)
        for n in names {
            #expect(Hostile.completions(reqs, marker: "STORM-\(n)-V5").count == 1, "\(n): final content warmed more than once")
            for v in 1...4 { #expect(Hostile.completions(reqs, marker: "STORM-\(n)-V\(v) ").isEmpty, "\(n) V\(v) warmed") }
        }
        #expect(events >= 20_000)

        // the template directory deleted and recreated
        let seen2 = seen + reqs.count
        try FileManager.default.removeItem(atPath: dir.file("tpl2"))
        try await Task.sleep(for: .milliseconds(300))
        try dir.write("tpl2/moved.txt", Hostile.text("MOVED-V1"))
        try await Hostile.eventually("recreated directory re-warmed", timeout: .seconds(20)) {
            !Hostile.completions(try await fake.requests(since: seen2), marker: "MOVED-V1").isEmpty
        }
        try await Task.sleep(for: .seconds(1))
        reqs = try await fake.requests(since: seen2)
        #expect(Hostile.completions(reqs, marker: "MOVED-V1").count == 1)
        // and it is still watched
        try dir.write("tpl2/moved.txt", Hostile.text("MOVED-V2"))
        try await Hostile.eventually("edit after recreation warmed", timeout: .seconds(20)) {
            !Hostile.completions(try await fake.requests(since: seen2), marker: "MOVED-V2").isEmpty
        }
        #expect(kv.process.isRunning)
        #expect(kv.stop() == 0)
    }

    @Test func thousandTemplatesInHundredDirectories() async throws {
        let dir = try TemporaryDirectory("kvthousand")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        var templates: [String: Any] = [:]
        for d in 0..<100 {
            for t in 0..<10 {
                let name = "d\(d)-t\(t)"
                templates[name] = try dir.write("tpl/d\(d)/t\(t).txt", "Template \(name): review carefully. <{message}>")
            }
        }
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: templates,
                                             extra: ["startup": ["backend_wait_seconds": 5]])
        let started = ContinuousClock.now
        let kv = try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json", "--log-level", "notice"],
                                   directory: dir.path)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(150))
        #expect(ready.contains("watching 1000 templates (0 failed)"), "\(ready)")
        print("1000 templates: READY after \(started.duration(to: .now))")
        // an edit deep in the tree is still seen
        let seen = try await fake.requests().count
        try dir.write("tpl/d99/t9.txt", "Template d99-t9 EDITED-DEEP: review carefully. <{message}>")
        try await Hostile.eventually("deep edit warmed", timeout: .seconds(20)) {
            !Hostile.completions(try await fake.requests(since: seen), marker: "EDITED-DEEP").isEmpty
        }
        #expect(kv.stop() == 0)
    }
}
