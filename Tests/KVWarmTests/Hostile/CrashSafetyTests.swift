import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// Repeated SIGKILL of the kvwarm binary at random points of its warms and state writes, each
/// followed by a restart, with template content changed between cycles.
///
/// Cycles: `$KVWARM_CRASH_CYCLES`, default 200 (the number). One cycle is a process
/// start (~0.1 s), the wait for its sweep, and a kill 0–700 ms later: about 0.5 s, so 200
/// cycles take about 100 s on the 2-core CI machine, inside the 3-minute budget.
@Suite struct HostileCrashSafetyTests {
    static let cycles = Int(ProcessInfo.processInfo.environment["KVWARM_CRASH_CYCLES"] ?? "") ?? 200
    static let names = ["alpha", "beta", "gamma"]

    @Test func sigkillAtRandomPointsNeverCorruptsStateOrRestoresStaleKV() async throws {
        let dir = try TemporaryDirectory("kvcrash")
        defer { dir.remove() }
        // 1 ms per token: each ~90-token warm is ~90 ms, so kills land in prefill, save, rename and state writes
        let fake = try await FakeLlamaServerProcess.start(arguments: ["--prefill-ms-per-token", "1"])
        defer { fake.stop() }
        let tplDir = dir.file("tpl")
        var versions = Dictionary(uniqueKeysWithValues: Self.names.map { ($0, 0) })
        func content(_ n: String, _ v: Int) -> String { Hostile.text("TPL-\(n)-V\(v)", words: 60 + v % 30) }
        for n in Self.names { try dir.write("tpl/\(n).txt", content(n, 0)) }
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
                                             templates: Dictionary(uniqueKeysWithValues: Self.names.map { ($0, dir.file("tpl/\($0).txt")) }))
        let stateDir = dir.file("state")
        let loader = SnapshotLoader(includeRoots: [tplDir], maxBytes: 1 << 20)

        /// The KV file name each template's current content must have.
        func expectedFiles() -> [String: String] {
            var out: [String: String] = [:]
            for n in Self.names {
                let s = try! loader.load(TemplateSpec(name: n, path: dir.file("tpl/\(n).txt"))).get()
                out[n] = SlotFileNaming.fileName(template: n, digest: s.digest)
            }
            return out
        }
        func checkState(_ cycle: Int) {
            guard let data = FileManager.default.contents(atPath: stateDir + "/state.json") else { return }
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            #expect((try? decoder.decode(WarmState.self, from: data)) != nil,
                    "cycle \(cycle): state.json does not parse: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }

        var rng = SystemRandomNumberGenerator()
        var seen = 0
        var restores = 0, kills = 0, cyclesWithStateWrites = 0
        var leftovers: [String: Set<String>] = ["state": [], "slots": []]
        let started = ContinuousClock.now
        for cycle in 0..<Self.cycles {
            // change content between cycles (sometimes back to an older version)
            if Bool.random(using: &rng) {
                let n = Self.names.randomElement(using: &rng)!
                versions[n] = Int.random(in: 0...1, using: &rng) == 0 ? max(0, versions[n]! - 1) : versions[n]! + 1
                try dir.write("tpl/\(n).txt", content(n, versions[n]!))
            }
            let expected = expectedFiles()
            let before = FileManager.default.contents(atPath: stateDir + "/state.json")
            let kv = try Hostile.run(config, dir)
            // the start is past prepare() and the sweep once it logs "starting"
            let starting = try await kv.awaitRecord(["STAGE": "startup", "MESSAGE_ID": "fa5ede2bc10143a696698d9da32e23f2"],
                                                    timeout: .seconds(20))
            _ = starting
            let swept = Set(kv.logRecords.compactMap { $0["FILES"] }.flatMap { $0.split(separator: ",").map(String.init) })
            for t in leftovers["state"]! {
                #expect(!FileManager.default.fileExists(atPath: stateDir + "/" + t), "cycle \(cycle): \(t) survived a start")
            }
            for p in leftovers["slots"]! {
                #expect(swept.contains(p) || !FileManager.default.fileExists(atPath: fake.slotSavePath + "/" + p),
                        "cycle \(cycle): \(p) survived a start")
            }
            let delay = Int.random(in: 0...700, using: &rng)
            try await Task.sleep(for: .milliseconds(delay))
            kv.signal(SIGKILL)
            kills += 1
            kv.process.waitUntilExit()
            if FileManager.default.contents(atPath: stateDir + "/state.json") != before { cyclesWithStateWrites += 1 }
            checkState(cycle)
            leftovers["state"] = Set(Hostile.files(stateDir).filter { $0.hasPrefix("state.json.tmp-") })
            leftovers["slots"] = Set(Hostile.files(fake.slotSavePath).filter { $0.hasSuffix(".partial") })

            // every restore in this cycle used the KV file of the template's current content
            let reqs = try await fake.requests(since: seen)
            seen += reqs.count
            let wanted = Set(expected.values)
            for r in reqs where (r["path"] as? String)?.contains("action=restore") == true {
                restores += 1
                let file = ((r["body"] as? [String: Any])?["filename"] as? String) ?? "?"
                #expect(wanted.contains(file), "cycle \(cycle): restored \(file), current content needs one of \(wanted.sorted())")
            }
        }

        // a last clean start: READY, nothing temporary left, every record matches current content
        let expected = expectedFiles()
        let kv = try Hostile.run(config, dir)
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        #expect(ready.contains("(0 failed)"), "\(ready)")
        #expect(Hostile.files(stateDir).allSatisfy { !$0.hasPrefix("state.json.tmp-") }, "\(Hostile.files(stateDir))")
        #expect(Hostile.files(fake.slotSavePath).allSatisfy { !$0.hasSuffix(".partial") }, "\(Hostile.files(fake.slotSavePath))")
        let state = try JSONDecoder.iso.decode(WarmState.self, from: Data(contentsOf: URL(fileURLWithPath: stateDir + "/state.json")))
        for n in Self.names {
            #expect(state.templates[n]?.kvFile == expected[n], "\(n): \(String(describing: state.templates[n]))")
            #expect(FileManager.default.fileExists(atPath: fake.slotSavePath + "/" + expected[n]!))
        }
        for r in try await fake.requests(since: seen) where (r["path"] as? String)?.contains("action=restore") == true {
            let file = ((r["body"] as? [String: Any])?["filename"] as? String) ?? "?"
            #expect(Set(expected.values).contains(file))
        }
        #expect(kv.stop() == 0)
        print("crash safety: \(Self.cycles) cycles, \(kills) SIGKILLs (\(cyclesWithStateWrites) cycles wrote state), \(restores) restores checked, \(started.duration(to: .now))")
    }
}

extension JSONDecoder {
    static var iso: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}
