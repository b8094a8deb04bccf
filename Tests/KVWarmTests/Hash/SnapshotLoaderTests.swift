import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `root/tpl` holds templates, `root/shared` is a second include root,
/// `root/outside` is not an include root.
struct SnapshotSandbox {
    let dir: TemporaryDirectory
    var root: String { dir.path }
    var tpl: String { dir.file("tpl") }
    var shared: String { dir.file("shared") }

    init() throws {
        dir = try TemporaryDirectory("kvsnap")
        try dir.write("tpl/inc/header.txt", "HEADER")
        try dir.write("shared/footer.txt", "FOOTER")
        try dir.write("outside/secret.txt", "TOP-SECRET")
    }

    var loader: SnapshotLoader { SnapshotLoader(includeRoots: [tpl, shared], maxBytes: 1024) }

    func spec(_ name: String = "t.txt", endpoint: TemplateEndpoint = .chat, role: TemplateRole = .user) -> TemplateSpec {
        TemplateSpec(name: "t", path: "\(tpl)/\(name)", endpoint: endpoint, role: role)
    }

    /// Writes template `name` with `text` and loads it.
    func load(_ text: String, name: String = "t.txt") throws -> Result<TemplateSnapshot, TemplateProblem> {
        try dir.write("tpl/\(name)", text)
        return loader.load(spec(name))
    }
}

extension Result {
    var success: Success? { if case .success(let s) = self { s } else { nil } }
    var failure: Failure? { if case .failure(let f) = self { f } else { nil } }
}

@Suite struct SnapshotLoaderTests {
    @Test func includeReferencesAreFoundInOrderOnce() {
        let refs = SnapshotLoader.includeReferences(in: "<{a}> <{message}> <{b/c.txt}> <{a}> <{}> <{x\ny}> <{unterminated")
        #expect(refs == ["a", "b/c.txt"])
    }

    @Test func relativeAndAbsoluteIncludesResolve() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        let snap = try #require(try box.load("<{inc/header.txt}>\n<{message}>\n<{\(box.shared)/footer.txt}>").success)
        #expect(snap.includes.map(\.reference) == ["inc/header.txt", "\(box.shared)/footer.txt"])
        #expect(snap.includes.map(\.path) == ["\(box.tpl)/inc/header.txt", "\(box.shared)/footer.txt"])
        #expect(snap.includes.map(\.content) == ["HEADER", "FOOTER"])
        #expect(snap.dependencyPaths == ["\(box.tpl)/t.txt", "\(box.tpl)/inc/header.txt", "\(box.shared)/footer.txt"])
        #expect(snap.digest.count == 64)
        #expect(snap.digest.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func digestCoversIncludesEndpointAndRole() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        let text = "<{inc/header.txt}> then <{message}>"
        let a = try #require(try box.load(text).success)
        let again = try #require(box.loader.load(box.spec()).success)
        #expect(a.digest == again.digest, "same inputs, same digest")

        try box.dir.write("tpl/inc/header.txt", "HEADER v2")
        let changedInclude = try #require(box.loader.load(box.spec()).success)
        #expect(changedInclude.digest != a.digest)

        try box.dir.write("tpl/inc/header.txt", "HEADER")
        #expect(box.loader.load(box.spec()).success?.digest == a.digest, "back to the same inputs")

        let completion = try #require(box.loader.load(box.spec(endpoint: .completion)).success)
        #expect(completion.digest != a.digest)
        let system = try #require(box.loader.load(box.spec(role: .system)).success)
        #expect(system.digest != a.digest)
        #expect(system.digest != completion.digest)

        let changedText = try #require(try box.load(text + " ").success)
        #expect(changedText.digest != a.digest)
    }

    @Test func digestSeparatesFieldBoundaries() {
        let spec = TemplateSpec(name: "t", path: "/x/t.txt")
        let a = TemplateSnapshot(spec: spec, text: "ab", includes: [.init(reference: "r", path: "/x/r", content: "c")])
        let b = TemplateSnapshot(spec: spec, text: "a", includes: [.init(reference: "br", path: "/x/r", content: "c")])
        let c = TemplateSnapshot(spec: spec, text: "ab", includes: [.init(reference: "rc", path: "/x/r", content: "")])
        #expect(a.digest != b.digest)
        #expect(a.digest != c.digest)
        // the name and path do not change what is warmed
        let renamed = TemplateSnapshot(spec: TemplateSpec(name: "u", path: "/y/u.txt"), text: "ab",
                                       includes: [.init(reference: "r", path: "/y/r", content: "c")])
        #expect(renamed.digest == a.digest)
    }

    @Test func includeEscapingViaDotDotIsRefused() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        let r = try box.load("<{../outside/secret.txt}>")
        #expect(r.failure == .includeOutsideRoots(reference: "../outside/secret.txt", resolved: "\(box.root)/outside/secret.txt"))
        #expect(!"\(r)".contains("TOP-SECRET"))
    }

    func passwdSample() -> String? {
        guard let text = try? String(contentsOfFile: "/etc/passwd", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first.map(String.init)
    }

    @Test func includeOfEtcPasswdIsRefusedAndNeverRead() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        let r = try box.load("before <{/etc/passwd}> after")
        #expect(r.failure == .includeOutsideRoots(reference: "/etc/passwd", resolved: "/etc/passwd"))
        if let sample = passwdSample() {
            #expect(!"\(r)".contains(sample))
            #expect(!(r.failure?.description.contains(sample) ?? true))
        }
    }

    @Test func symlinkPointingOutIsRefused() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(symlink("/etc/passwd", "\(box.tpl)/inc/link.txt") == 0)
        #expect(symlink("\(box.root)/outside", "\(box.tpl)/dirlink") == 0)
        let r = try box.load("<{inc/link.txt}>")
        #expect(r.failure == .includeOutsideRoots(reference: "inc/link.txt", resolved: "/etc/passwd"))
        if let sample = passwdSample() { #expect(!"\(r)".contains(sample)) }
        let viaDir = try box.load("<{dirlink/secret.txt}>")
        #expect(viaDir.failure == .includeOutsideRoots(reference: "dirlink/secret.txt",
                                                       resolved: "\(box.root)/outside/secret.txt"))
        #expect(!"\(viaDir)".contains("TOP-SECRET"))
    }

    @Test
    func symlinkInsideTheRootsIsFollowed() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(symlink("\(box.shared)/footer.txt", "\(box.tpl)/foot") == 0)
        let snap = try #require(try box.load("<{foot}>").success)
        #expect(snap.includes.first?.content == "FOOTER")
        #expect(snap.includes.first?.path == "\(box.tpl)/foot", "the watched path is the link itself")
    }

    @Test func missingIncludeIsReported() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        let r = try box.load("<{inc/nope.txt}>")
        #expect(r.failure == .includeMissing(reference: "inc/nope.txt", path: "\(box.tpl)/inc/nope.txt"))
        #expect(r.failure?.reason == "include_missing")
    }

    @Test func symlinkLoopIsAnErrorNotAHang() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(symlink("b", "\(box.tpl)/a") == 0)
        #expect(symlink("a", "\(box.tpl)/b") == 0)
        let r = try box.load("<{a}>")
        guard case .includeUnreadable(let ref, _) = r.failure else {
            Issue.record("expected includeUnreadable, got \(r)")
            return
        }
        #expect(ref == "a")
    }

    @Test func includeThatIsADirectoryIsUnreadable() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        guard case .includeUnreadable(let ref, _) = try box.load("<{inc}>").failure else {
            Issue.record("a directory include was accepted")
            return
        }
        #expect(ref == "inc")
    }

    @Test func missingTemplate() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(box.loader.load(box.spec("gone.txt")).failure == .missing(path: "\(box.tpl)/gone.txt"))
    }

    @Test func templateThatIsADirectory() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(box.loader.load(box.spec("inc")).failure == .notRegularFile(path: "\(box.tpl)/inc"))
    }

    @Test func templateWithModeZero() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        try box.dir.write("tpl/locked.txt", "LOCKED")
        #expect(chmod("\(box.tpl)/locked.txt", 0) == 0)
        let r = box.loader.load(box.spec("locked.txt"))
        if geteuid() == 0 {
            // root bypasses permission bits: the file reads normally
            #expect(r.success?.text == "LOCKED")
        } else {
            guard case .unreadable(let path, _) = r.failure else {
                Issue.record("expected unreadable, got \(r)")
                return
            }
            #expect(path == "\(box.tpl)/locked.txt")
        }
    }

    @Test func invalidUTF8AndNULAreRejected() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        try Data([0x61, 0xFF, 0xFE, 0x62]).write(to: URL(fileURLWithPath: "\(box.tpl)/bad.txt"))
        #expect(box.loader.load(box.spec("bad.txt")).failure == .notUTF8(path: "\(box.tpl)/bad.txt"))
        try Data([0x61, 0x00, 0x62]).write(to: URL(fileURLWithPath: "\(box.tpl)/nul.txt"))
        #expect(box.loader.load(box.spec("nul.txt")).failure == .notUTF8(path: "\(box.tpl)/nul.txt"))
    }

    @Test func invalidUTF8IncludeIsUnreadable() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        try Data([0xC3, 0x28]).write(to: URL(fileURLWithPath: "\(box.tpl)/inc/bad.txt"))
        guard case .includeUnreadable(let ref, _) = try box.load("<{inc/bad.txt}>").failure else {
            Issue.record("invalid UTF-8 include accepted")
            return
        }
        #expect(ref == "inc/bad.txt")
    }

    @Test func emptyTemplate() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(try box.load("").failure == .empty(path: "\(box.tpl)/t.txt"))
    }

    @Test func templateLargerThanMaxBytes() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        let exact = try box.load(String(repeating: "a", count: 1024))
        #expect(exact.success != nil, "exactly maxBytes is allowed")
        let r = try box.load(String(repeating: "a", count: 1025))
        #expect(r.failure == .tooLarge(path: "\(box.tpl)/t.txt", bytes: 1025, limit: 1024))
        // an include over the limit fails the template too
        try box.dir.write("tpl/inc/big.txt", String(repeating: "b", count: 2000))
        guard case .includeUnreadable(let ref, _) = try box.load("<{inc/big.txt}>").failure else {
            Issue.record("oversized include accepted")
            return
        }
        #expect(ref == "inc/big.txt")
    }

    @Test(.timeLimit(.minutes(1))) func fifoInPlaceOfATemplateDoesNotHang() throws {
        let box = try SnapshotSandbox()
        defer { box.dir.remove() }
        #expect(mkfifo("\(box.tpl)/fifo", 0o644) == 0)
        #expect(box.loader.load(box.spec("fifo")).failure == .notRegularFile(path: "\(box.tpl)/fifo"))
        // and as an include
        guard case .includeUnreadable = try box.load("<{fifo}>").failure else {
            Issue.record("FIFO include accepted")
            return
        }
    }
}
