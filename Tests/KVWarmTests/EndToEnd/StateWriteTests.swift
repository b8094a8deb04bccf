import Foundation
import KVWarm
import KVWarmTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// When `state.json` is written: once per drained queue (at most a second apart while a long
/// startup warm runs), not once per pass; an edit's record is on disk right after its pass.
/// Writes are counted with a real inotify watch on the state directory: every write creates a
/// temporary file and renames it over `state.json` (IN_CREATE, then IN_MOVED_TO). The kernel
/// merges an event into an identical one still unread, so a watch on IN_MOVED_TO alone would
/// count a run of writes as one; with IN_CREATE in between, no two queued events are alike.
@Suite(.timeLimit(.minutes(2))) struct StateWriteTests {
    /// Counts renames onto `state.json` in one directory.
    final class StateRenames {
        let fd: Int32
        init(directory: String) throws {
            fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0, inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO | IN_CREATE)) >= 0 else {
                throw POSIXError(.init(rawValue: errno) ?? .EIO)
            }
        }
        deinit { close(fd) }

        /// Renames onto state.json queued since the last call; with a timeout, waits up to it for the first.
        func take(waitingUpTo timeout: Duration = .zero) -> Int {
            let deadline = ContinuousClock.now + timeout
            var count = drain()
            while count == 0 && ContinuousClock.now < deadline {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 100)
                count += drain()
            }
            return count
        }

        private func drain() -> Int {
            var count = 0
            var buf = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { return count }
                var off = 0
                while off < n {
                    let len = buf.withUnsafeBytes { Int($0.load(fromByteOffset: off + 12, as: UInt32.self)) }
                    let name = buf[(off + 16)..<(off + 16 + len)].prefix { $0 != 0 }
                    if String(decoding: name, as: UTF8.self) == "state.json" { count += 1 }
                    off += 16 + len
                }
            }
        }
    }

    @Test func startupWarmWritesTheStateOncePerDrainNotPerTemplate() async throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start()
        defer { fake.stop() }
        var templates: [String: Any] = [:]
        for i in 0..<60 { templates["t\(i)"] = try dir.write("tpl/t\(i).txt", "Template \(i): review the change line by line. <{message}>") }
        let config = try Hostile.writeConfig(dir, url: Hostile.url(fake), slotDir: fake.slotSavePath, templates: templates)
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let renames = try StateRenames(directory: dir.file("state"))
        let kv = try Hostile.run(config, dir)
        try await kv.awaitNotify("READY=1", timeout: .seconds(60))
        let warms = Hostile.records(kv, ["STAGE": "warm", "OUTCOME": "ok"]).count
        let startupWrites = renames.take()
        print("startup warm of 60 templates: \(startupWrites) writes of state.json")
        let state = try JSONDecoder.iso.decode(WarmState.self, from: Data(contentsOf: URL(fileURLWithPath: dir.file("state/state.json"))))
        #expect(warms == 60)
        #expect(state.templates.count == 60, "every warm is on disk before READY")
        #expect(state.templates.values.allSatisfy { $0.kvFile != nil && $0.digest != nil })
        // one write per second of warming at most, plus the one when the queue ran empty
        #expect(startupWrites >= 1)
        #expect(startupWrites < 20, "\(startupWrites) writes of state.json for 60 templates")

        // an edit: its record is written as soon as its pass ends
        let before = state.templates["t7"]?.digest
        let mark = kv.logRecords.count
        try dir.write("tpl/t7.txt", "Template 7 EDITED: review the change line by line. <{message}>")
        try await kv.awaitRecord(["STAGE": "persist", "TEMPLATE": "t7", "OUTCOME": "ok"], after: mark, timeout: .seconds(20))
        #expect(renames.take(waitingUpTo: .seconds(5)) == 1)
        let after = try JSONDecoder.iso.decode(WarmState.self, from: Data(contentsOf: URL(fileURLWithPath: dir.file("state/state.json"))))
        #expect(after.templates["t7"]?.digest != before)
        #expect(after.templates.count == 60)
        #expect(kv.stop() == 0)
    }

    /// A 30 s warm in flight does not hold back the record of the quick warm before it.
    @Test func aLongPassDoesNotHoldBackEarlierRecords() async throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let fake = try await FakeLlamaServerProcess.start(arguments: ["--prefill-ms-per-token", "100"])
        defer { fake.stop() }
        let config = try Hostile.writeConfig(
            dir, url: Hostile.url(fake), slotDir: fake.slotSavePath,
            templates: ["a-fast": try dir.write("tpl/fast.txt", Hostile.text("FAST", words: 10)),
                        "b-slow": try dir.write("tpl/slow.txt", Hostile.text("SLOW", words: 300))],
            backend: ["timeout_seconds": 120])
        let kv = try Hostile.run(config, dir)
        try await kv.awaitRecord(["STAGE": "persist", "TEMPLATE": "a-fast", "OUTCOME": "ok"], timeout: .seconds(30))
        try await Hostile.eventually("a-fast's record on disk while b-slow warms", timeout: .seconds(5)) {
            guard let data = FileManager.default.contents(atPath: dir.file("state/state.json")),
                  let state = try? JSONDecoder.iso.decode(WarmState.self, from: data) else { return false }
            return state.templates["a-fast"]?.kvFile != nil
        }
        #expect(Hostile.records(kv, ["STAGE": "warm", "TEMPLATE": "b-slow", "OUTCOME": "ok"]).isEmpty,
                "b-slow is still warming: its 30 s prefill did not hold the write back")
        #expect(kv.stop() == 0)
    }
}
