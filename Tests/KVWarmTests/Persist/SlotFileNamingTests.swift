import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

@Suite struct SlotFileNamingTests {
    static let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

    @Test func safeNameKeepsOnlyTheSafeAlphabet() {
        #expect(SlotFileNaming.safeName("code-review_2") == "code-review_2")
        #expect(SlotFileNaming.safeName("a b") == "a_b")
        #expect(SlotFileNaming.safeName("../etc/passwd") == "___etc_passwd")
        #expect(SlotFileNaming.safeName("a\\b") == "a_b")
        #expect(SlotFileNaming.safeName("é") == "_")
        #expect(SlotFileNaming.safeName("") == "_")
        #expect(SlotFileNaming.safeName(".") == "_")
        #expect(SlotFileNaming.safeName(String(repeating: "x", count: 300)).utf8.count == 100)
        #expect(SlotFileNaming.safeName(String(repeating: "ü", count: 300)).utf8.count == 100)
    }

    @Test(arguments: ["code", "a b", "../../x", "émoji 😀", "", "x.y", String(repeating: "n", count: 250), "-"])
    func ownNamesAreRecognised(_ template: String) {
        let name = SlotFileNaming.fileName(template: template, digest: Self.digest)
        #expect(name.hasSuffix("-0123456789ab.bin"))
        #expect(!name.contains("/"))
        #expect(SlotFileNaming.isKVWarmFile(name))
        #expect(!SlotFileNaming.isPartial(name))
        let partial = SlotFileNaming.partialName(of: name)
        #expect(partial == name + ".partial")
        #expect(SlotFileNaming.isKVWarmFile(partial))
        #expect(SlotFileNaming.isPartial(partial))
    }

    @Test(arguments: [
        "../x-0123456789ab.bin",
        "dir/x-0123456789ab.bin",
        "passwd",
        "state.json",
        "x-0123456789AB.bin",
        "x-0123456789ab.BIN",
        "x-0123456789a.bin",
        "x-0123456789abc.bin",
        "x-0123456789ag.bin",
        "-0123456789ab.bin",
        "0123456789ab.bin",
        "x 0123456789ab.bin",
        "x y-0123456789ab.bin",
        "x.y-0123456789ab.bin",
        "x-0123456789ab.bin.tmp",
        "x-0123456789ab.bin.partial.partial",
        "x-0123456789ab.partial",
        ".bin",
        "",
    ])
    func foreignNamesAreRejected(_ name: String) {
        #expect(!SlotFileNaming.isKVWarmFile(name))
        #expect(!SlotFileNaming.isPartial(name))
    }

    @Test
    func fullwidthHexDigitsAreRejected() {
        // U+FF10… fullwidth digits/letters are isHexDigit in Swift; kvwarm never writes them
        #expect(!SlotFileNaming.isKVWarmFile("x-\u{FF10}123456789ab.bin"))
        #expect(!SlotFileNaming.isKVWarmFile("x-\u{FF10}\u{FF11}\u{FF12}\u{FF13}\u{FF14}\u{FF15}\u{FF16}\u{FF17}\u{FF18}\u{FF19}\u{FF41}\u{FF42}.bin"))
    }
}

@Suite struct SlotPersisterSweepTests {
    static let keep = "code-0123456789ab.bin"
    static let orphan = "old-fedcba987654.bin"
    static let partial = "code-0123456789ab.bin.partial"
    static let foreign = ["passwd", "notes.txt", "other-0123456789AB.bin", "model.gguf", "x-0123456789ab.bin.tmp"]
    /// Files of templates another kvwarm on the same slot directory owns (a final and a partial save).
    static let othersFiles = ["support-00112233aabb.bin", "support-00112233aabb.bin.partial"]
    /// The stems of templates "code" and "old" (no router model).
    static let mine: Set<String> = ["code", "old"]

    func persister(_ dir: String?) -> SlotPersister {
        // never called: sweeping only touches the directory
        SlotPersister(client: LlamaClient(transport: CurlTransport(address: .unixSocket(path: "/nonexistent.sock"), apiKey: nil),
                                          timeout: .seconds(1)), slotSaveDir: dir)
    }

    func populate(_ dir: TemporaryDirectory) throws {
        for n in [Self.keep, Self.orphan, Self.partial] + Self.foreign + Self.othersFiles { try dir.write(n, n) }
    }

    @Test func sweepRemovesOrphansAndPartialsOnly() throws {
        let dir = try TemporaryDirectory("kvsweep")
        defer { dir.remove() }
        try populate(dir)
        let removed = persister(dir.path).sweepOrphans(keep: [Self.keep], stems: Self.mine)
        #expect(removed == [Self.orphan, Self.partial].sorted())
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        #expect(left == Set([Self.keep] + Self.foreign + Self.othersFiles), "another instance's files stay")
        #expect(persister(dir.path).sweepOrphans(keep: [Self.keep], stems: Self.mine) == [], "nothing more to sweep")
    }

    @Test func partialIsRemovedEvenWhenKept() throws {
        let dir = try TemporaryDirectory("kvsweep")
        defer { dir.remove() }
        try populate(dir)
        let removed = persister(dir.path).sweepOrphans(keep: [Self.keep, Self.partial, Self.orphan], stems: Self.mine)
        #expect(removed == [Self.partial])
    }

    @Test func withoutSlotDirNothingIsTouched() throws {
        let dir = try TemporaryDirectory("kvsweep")
        defer { dir.remove() }
        try populate(dir)
        let p = persister(nil)
        #expect(p.sweepOrphans(keep: [], stems: Self.mine) == [])
        #expect(p.exists(Self.keep) == nil)
        p.remove(Self.keep)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).count
                == 3 + Self.foreign.count + Self.othersFiles.count)
    }

    @Test func removeAndExistsOnlyConcernKVWarmNames() throws {
        let dir = try TemporaryDirectory("kvsweep")
        defer { dir.remove() }
        try populate(dir)
        let p = persister(dir.path)
        #expect(p.exists(Self.keep) == true)
        #expect(p.exists("gone-0123456789ab.bin") == false)
        p.remove("passwd")
        p.remove("../" + dir.path.split(separator: "/").last! + "/notes.txt")
        #expect(FileManager.default.fileExists(atPath: dir.file("passwd")))
        #expect(FileManager.default.fileExists(atPath: dir.file("notes.txt")))
        p.remove(Self.orphan)
        #expect(!FileManager.default.fileExists(atPath: dir.file(Self.orphan)))
    }
}
