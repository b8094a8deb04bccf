import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct StateStoreTests {
    static func sampleState(digest: String = "d1") -> WarmState {
        var s = WarmState()
        s.backend = BackendFingerprint(modelPath: "/m.gguf", totalSlots: 4, nCtx: 4096, chatTemplateSHA256: "abc",
                                       nParams: 1, modelSize: 2, nVocab: 3, nEmbd: 4, nCtxTrain: 5, kvTag: "q8",
                                       build: "b1")
        s.restoreIneffective = ["fp-old"]
        var r = WarmRecord()
        r.digest = digest
        r.fingerprint = "fp"
        r.kvFile = "code-0123456789ab.bin"
        r.promptTokens = 120
        r.mode = .restore
        r.processedTokens = 3
        r.cachedTokens = 117
        r.warmMS = 12.5
        r.saveMS = 3.25
        r.warmedAt = Date(timeIntervalSince1970: 1_700_000_000)
        r.lastError = nil
        s.templates["code"] = r
        var failed = WarmRecord()
        failed.lastError = "backend unreachable"
        failed.lastErrorAt = Date(timeIntervalSince1970: 1_700_000_100)
        s.templates["other"] = failed
        return s
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        guard stat(path, &st) == 0 else { return 0 }
        return st.st_mode & 0o7777
    }

    @Test func roundTrip() throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let store = StateStore(directory: dir.file("state"))
        try store.prepare()
        guard case .absent = store.load() else { Issue.record("fresh store is not absent"); return }
        let state = Self.sampleState()
        try store.save(state)
        guard case .loaded(let back) = store.load() else { Issue.record("saved state did not load"); return }
        #expect(back == state)
        #expect(mode(store.path) == 0o600)
        // deterministic encoding
        #expect(try StateStore.encode(state) == StateStore.encode(back))
        #expect(try StateStore.encode(state).last == 0x0A)
    }

    @Test func prepareCreatesThePrivateDirectory() throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let store = StateStore(directory: dir.file("a/b/state"))
        try store.prepare()
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: store.directory, isDirectory: &isDir) && isDir.boolValue)
        #expect(mode(store.directory) == 0o700)
        try store.prepare()  // idempotent
        #expect(mode(store.directory) == 0o700)
    }

    @Test func saveReplacesTheFileAtomically() throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let store = StateStore(directory: dir.path)
        try store.prepare()
        try store.save(Self.sampleState(digest: "old"))
        var before = stat()
        #expect(stat(store.path, &before) == 0)
        try store.save(Self.sampleState(digest: "new"))
        var after = stat()
        #expect(stat(store.path, &after) == 0)
        #expect(before.st_ino != after.st_ino, "a new file was renamed into place, not rewritten in place")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(leftovers == ["state.json"], "no temporary file remains")
        guard case .loaded(let s) = store.load() else { Issue.record("not loaded"); return }
        #expect(s.templates["code"]?.digest == "new")
    }

    @Test func crashLeftoverTempFileIsRemovedAndOldStateKept() throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let store = StateStore(directory: dir.path)
        try store.prepare()
        let old = Self.sampleState(digest: "old")
        try store.save(old)
        // a crash mid-save: a half-written temporary file next to the intact old state
        try dir.write("state.json.tmp-123", "{\"schemaVersion\": 1, \"templ")
        try dir.write("unrelated.txt", "keep me")
        try store.prepare()
        #expect(!FileManager.default.fileExists(atPath: dir.file("state.json.tmp-123")))
        #expect(FileManager.default.fileExists(atPath: dir.file("unrelated.txt")))
        guard case .loaded(let s) = store.load() else { Issue.record("old state lost"); return }
        #expect(s == old)
    }

    @Test func unparsableFileIsDiscardedAndMovedAside() throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let store = StateStore(directory: dir.path)
        try store.prepare()
        try dir.write("state.json", "{ not json")
        guard case .discarded(let reason, let movedTo) = store.load() else {
            Issue.record("garbage was not discarded")
            return
        }
        #expect(!reason.isEmpty)
        #expect(movedTo == store.path + ".unreadable")
        #expect(!FileManager.default.fileExists(atPath: store.path))
        #expect(try String(contentsOfFile: store.path + ".unreadable", encoding: .utf8) == "{ not json")
        guard case .absent = store.load() else { Issue.record("discarded state still loads"); return }
        // a later save works normally
        try store.save(Self.sampleState())
        guard case .loaded = store.load() else { Issue.record("save after discard failed"); return }
    }

    @Test func otherSchemaIsDiscarded() throws {
        let dir = try TemporaryDirectory("kvstate")
        defer { dir.remove() }
        let store = StateStore(directory: dir.path)
        try store.prepare()
        var s = Self.sampleState()
        s.schemaVersion = 99
        try store.save(s)
        guard case .discarded(let reason, let movedTo) = store.load() else {
            Issue.record("schema 99 accepted")
            return
        }
        #expect(reason.contains("99"))
        #expect(movedTo == store.path + ".unreadable")
    }
}
