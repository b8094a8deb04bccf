import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

@Suite struct TemplateRendererTests {
    func render(_ text: String, includes: [(String, String)] = []) -> RenderedTemplate {
        let snap = TemplateSnapshot(spec: TemplateSpec(name: "t", path: "/t/t.txt"), text: text,
                                    includes: includes.map { .init(reference: $0.0, path: "/t/\($0.0)", content: $0.1) })
        return TemplateRenderer.render(snap)
    }

    @Test func placeholderSplitsBeforeAndAfter() {
        let r = render("Review this:\n<{message}>\nBe brief.")
        #expect(r.beforeMessage == "Review this:\n")
        #expect(r.afterMessage == "\nBe brief.")
        #expect(r.hasPlaceholder)
        #expect(r.withEmptyMessage == "Review this:\n\nBe brief.")
    }

    @Test func withoutPlaceholderEverythingIsBefore() {
        let r = render("No placeholder here.")
        #expect(r.beforeMessage == "No placeholder here.")
        #expect(r.afterMessage == "")
        #expect(!r.hasPlaceholder)
    }

    @Test func secondPlaceholderBecomesEmpty() {
        let r = render("A<{message}>B<{message}>C")
        #expect(r.beforeMessage == "A")
        #expect(r.afterMessage == "BC")
        #expect(r.hasPlaceholder)
    }

    @Test func includesAreExpandedOnBothSides() {
        let r = render("<{h.txt}>|<{message}>|<{f.txt}>", includes: [("h.txt", "HEAD"), ("f.txt", "FOOT")])
        #expect(r.beforeMessage == "HEAD|")
        #expect(r.afterMessage == "|FOOT")
    }

    @Test func includesAreNotRecursive() {
        let r = render("X<{a.txt}>Y", includes: [("a.txt", "A<{b.txt}>A<{message}>"), ("b.txt", "B")])
        #expect(r.beforeMessage == "XA<{b.txt}>A<{message}>Y", "included text is not scanned again")
        #expect(!r.hasPlaceholder)
    }

    @Test func includesAreNotRecursiveThroughTheLoader() throws {
        let dir = try TemporaryDirectory("kvrender")
        defer { dir.remove() }
        try dir.write("a.txt", "A says <{b.txt}>")
        try dir.write("b.txt", "B")
        let path = try dir.write("t.txt", "[<{a.txt}>]<{message}>")
        let snap = try #require(SnapshotLoader(includeRoots: [dir.path], maxBytes: 1000)
            .load(TemplateSpec(name: "t", path: path)).success)
        #expect(snap.includes.map(\.reference) == ["a.txt"], "b.txt is not loaded")
        let r = TemplateRenderer.render(snap)
        #expect(r.beforeMessage == "[A says <{b.txt}>]")
    }

    @Test func unknownAndMalformedReferencesStayLiteral() {
        let r = render("a <{unknown}> b <{}> c <{multi\nline}> d <{unterminated", includes: [])
        #expect(r.beforeMessage == "a <{unknown}> b <{}> c <{multi\nline}> d <{unterminated")
        #expect(!r.hasPlaceholder)
        let nested = render("<{<{message}>}>")
        // "<{<{message}" is not an include the loader knows: literal, then "}>" literal
        #expect(nested.beforeMessage == "<{<{message}>}>")
        #expect(!nested.hasPlaceholder)
    }

    @Test func warmMessagesForUserRole() {
        let r = render("Q: <{message}> A:")
        let m = WarmPromptBuilder.messages(for: r, role: .user)
        #expect(m.count == 1)
        #expect(m[0].role == "user")
        #expect(m[0].content == "Q: " + WarmPromptBuilder.sentinel + " A:")
    }

    @Test func warmMessagesForSystemRole() {
        let r = render("Be terse. <{message}> Thanks.")
        let m = WarmPromptBuilder.messages(for: r, role: .system)
        #expect(m.map(\.role) == ["system", "user"])
        #expect(m[0].content == "Be terse.  Thanks.")
        #expect(m[1].content == WarmPromptBuilder.sentinel)
    }

    @Test func completionPrefixIsTextBeforeMessage() async throws {
        let r = render("<{h}>PREFIX<{message}>SUFFIX", includes: [("h", "H:")])
        // the completion endpoint never calls the server
        let builder = WarmPromptBuilder(client: LlamaClient(
            transport: CurlTransport(address: .unixSocket(path: "/nonexistent/kvwarm.sock"), apiKey: nil),
            timeout: .seconds(1)))
        let p = try await builder.prefix(r, spec: TemplateSpec(name: "t", path: "/t", endpoint: .completion))
        #expect(p == "H:PREFIX")
    }
}
