import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

/// Every file in `Tests/Fixtures/bad-templates/` (see its README) fails its template alone with a
/// clear REASON; the other templates warm and READY says `(k failed)`.
@Suite struct HostileBadTemplateCorpusTests {
    struct Case: @unchecked Sendable {
        var stem: String
        var name: String
        var path: String
        var setup: [[String: Any]]
        /// nil: expected to warm
        var reason: String?
    }

    static let corpusDir = Hostile.fixtures + "/bad-templates"
    static let maxBytes = 100_000

    static func cases() throws -> [Case] {
        try Hostile.files(corpusDir).filter { $0.hasSuffix(".json") }.map { f in
            let o = try Hostile.json(corpusDir + "/" + f) as! [String: Any]
            let stem = String(f.dropLast(5))
            var expect = o["expect"] as! [String: Any]
            if geteuid() == 0, let r = o["expect_as_root"] as? [String: Any] { expect = r }
            return Case(stem: stem, name: (o["name"] as? String) ?? stem, path: o["path"] as! String,
                        setup: (o["setup"] as? [[String: Any]]) ?? [], reason: expect["reason"] as? String)
        }
    }

    /// Runs one case's setup steps in `dir`; returns file descriptors to keep open (bound sockets).
    static func build(_ c: Case, in dir: TemporaryDirectory) throws -> [Int32] {
        var keep: [Int32] = []
        let fm = FileManager.default
        for step in c.setup {
            let target = ["file", "dir", "fifo", "socket", "symlink"].compactMap { step[$0] as? String }.first!
            let p = dir.file(target)
            try fm.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if step["file"] != nil {
                var bytes = Data()
                if let t = step["text"] as? String { bytes = Data(t.utf8) }
                if let b = step["base64"] as? String { bytes = Data(base64Encoded: b)! }
                if let fill = step["fill"] as? String, let n = step["bytes"] as? Int {
                    bytes = Data(repeating: fill.utf8.first!, count: n)
                }
                try bytes.write(to: URL(fileURLWithPath: p))
                if let mode = step["mode"] as? Int { chmod(p, mode_t(mode)) }
            } else if step["dir"] != nil {
                try fm.createDirectory(atPath: p, withIntermediateDirectories: true)
            } else if step["fifo"] != nil {
                #expect(mkfifo(p, 0o644) == 0)
            } else if step["socket"] != nil {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_un()
                addr.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                    for (i, b) in p.utf8.enumerated() { raw[i] = b }
                }
                let ok = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                #expect(ok == 0, "bind \(p)")
                keep.append(fd)
            } else if let to = step["to"] as? String {
                try fm.createSymbolicLink(atPath: p, withDestinationPath: to)
            }
        }
        return keep
    }

    @Test func eachBadTemplateFailsAloneWithAReason() async throws {
        let cases = try Self.cases()
        #expect(cases.count >= 20)
        let dir = try TemporaryDirectory("kvbadtpl")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("tpl"), withIntermediateDirectories: true)
        var fds: [Int32] = []
        for c in cases { fds += try Self.build(c, in: dir) }
        defer { for fd in fds { close(fd) } }
        try dir.write("tpl/good.txt", Hostile.text("GOOD-TEMPLATE"))

        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        var templates: [String: Any] = ["good": dir.file("tpl/good.txt")]
        for c in cases { templates[c.name] = dir.file(c.path) }
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: templates,
                                             extra: ["include_roots": [dir.file("tpl")], "max_template_bytes": Self.maxBytes])
        let check = try await ProcessRunner.run(KVWarmProcess.binary, ["check", "--config", config])
        #expect(check.status == 0, "a bad template is not a bad config: \(check.stderr)")

        let kv = try Hostile.run(config, dir)
        let failing = cases.filter { $0.reason != nil }
        let ready = try await kv.awaitNotify("READY=1", timeout: .seconds(90))
        #expect(ready.contains("STATUS=watching \(cases.count + 1) templates (\(failing.count) failed)"), "\(ready)")
        try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": "good", "OUTCOME": "ok"], timeout: .seconds(10))
        for c in cases {
            if let reason = c.reason {
                let rec = try await kv.awaitRecord(["STAGE": "hash", "TEMPLATE": c.name, "OUTCOME": "failed"], timeout: .seconds(30))
                #expect(rec["REASON"] == reason, "\(c.stem): \(rec)")
                #expect(rec["MESSAGE"]?.isEmpty == false)
                #expect(Hostile.records(kv, ["STAGE": "warm", "TEMPLATE": c.name, "OUTCOME": "ok"]).isEmpty, "\(c.stem) warmed")
            } else {
                try await kv.awaitRecord(["STAGE": "warm", "TEMPLATE": c.name, "OUTCOME": "ok"], timeout: .seconds(30))
            }
        }
        // KV file names never leave the slot directory and keep kvwarm's safe alphabet
        let slots = Hostile.files(fake.slotSavePath)
        #expect(!slots.isEmpty)
        for f in slots { #expect(SlotFileNaming.isKVWarmFile(f), "odd slot file \(f)") }
        #expect(Hostile.files(fake.directory.path).allSatisfy { ["slots", "stderr.log"].contains($0) })
        for r in try await fake.requests(path: "/slots") {
            let name = ((r["body"] as? [String: Any])?["filename"] as? String) ?? ""
            #expect(!name.contains("/") && !name.contains(".."), "filename \(name)")
        }
        // nothing outside include_roots reached the backend
        let all = try await fake.requests().map(Hostile.bodyText).joined(separator: "\n")
        #expect(!all.contains("root:x:0:0"), "/etc/passwd content was sent to the backend")
        #expect(!all.contains("TOP-SECRET-DOTDOT"))
        #expect(kv.process.isRunning)
        #expect(kv.stop() == 0)
    }
}
