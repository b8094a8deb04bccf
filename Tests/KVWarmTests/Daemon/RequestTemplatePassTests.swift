import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// A request template through ``TemplatePass`` against ``ScriptedTransport``: the server gets
/// the file's own bytes, the warm is the text before the user's turn, an edit the server renders
/// the same restores, and a body the server refuses fails the template without retries.
@Suite(.timeLimit(.minutes(1))) struct RequestTemplatePassTests {
    static let body = """
    {
      "tools": [{"type": "function", "function": {"name": "grep", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
      "messages": [
        {"role": "system", "content": "You review code. <{rules.txt}>"},
        {"role": "user", "content": "Review this: <{message}>"}
      ]
    }
    """

    struct Env {
        let box: PassSandbox
        let t: ScriptedTransport
        let parts: PipelineParts
        let spec: TemplateSpec
        var path: String { box.dir.file("tpl/agent.json") }

        init() throws {
            box = try PassSandbox()
            try box.dir.write("tpl/agent.json", RequestTemplatePassTests.body)
            t = ScriptedTransport(.init(slotSaveDirectory: box.slots))
            try box.dir.write("config.json", """
                {"backend": {"url": "http://127.0.0.1:9", "slot_save_dir": "\(box.slots)", "timeout_seconds": 5},
                 "state_dir": "\(box.stateDir)", "templates": {"agent": "\(box.dir.file("tpl/agent.json"))"},
                 "include_roots": ["\(box.dir.file("tpl"))"]}
                """)
            let config = try ConfigLoader(environment: [:]).load(path: box.dir.file("config.json"))
            parts = PipelineParts(config: config, transport: t, scheduler: SlotScheduler())
            spec = config.templates[0]
        }

        func run(previous: WarmRecord? = nil) async -> PassOutcome {
            await TemplatePass(parts: parts).run(.init(spec: spec, previous: previous, fingerprint: nil, restoreIneffective: []))
        }

        var applyBodies: [String] {
            t.requests(.post("/apply-template")).map { String(decoding: $0.body ?? [], as: UTF8.self) }
        }
        var completionPrompts: [String] {
            t.requests(.post("/completion")).compactMap { ScriptedTransport.jsonBody($0)?["prompt"] as? String }
        }
    }

    @Test func theServerGetsTheFilesBytesAndTheWarmStopsAtTheUsersTurn() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let o = await env.run()
        #expect(o.result == .warmed(.prefill), "\(o.events)")
        let sent = try #require(env.applyBodies.first)
        let expected = Self.body
            .replacingOccurrences(of: "<{rules.txt}>", with: PassSandbox.rules)
            .replacingOccurrences(of: "<{message}>", with: WarmPromptBuilder.sentinel)
        #expect(sent == expected, "the body is the file with includes and the sentinel, nothing re-encoded")
        let prompt = try #require(env.completionPrompts.first)
        // the emulated chat template: <bos><start_of_turn>user\n{system}\n\n{user}…
        #expect(prompt.hasPrefix("<bos><start_of_turn>user\nYou review code. rule1 rule2"), "\(prompt)")
        #expect(prompt.hasSuffix("rule80\n\nReview this: "), "the warm stops where the user's text starts: \(prompt)")
        #expect(o.record?.prefixDigest == PromptDigest.of(prompt))
        #expect(o.dependencies == [env.path, env.box.includePath])
    }

    @Test func anEditTheServerRendersTheSameRestoresInsteadOfPrefilling() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let first = await env.run()
        let rec = try #require(first.record)
        // reformatted: other whitespace, same messages; the emulated server renders the same prompt
        try env.box.dir.write("tpl/agent.json", Self.body.replacingOccurrences(of: "\n  ", with: "\n      "))
        env.t.clearRequests()
        let o = await env.run(previous: rec)
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "samePrefix", "warmed"], "\(o.events)")
        #expect(o.result == .warmed(.restore))
        #expect(o.record?.digest != rec.digest, "the record follows the file")
        #expect(o.record?.kvFile == rec.kvFile, "and keeps the KV file that holds the prompt")
        #expect(env.t.requests(.post("/slots/*")).contains { $0.path.contains("action=restore") })

        // a real change of the prompt prefills
        try env.box.dir.write("tpl/agent.json", Self.body.replacingOccurrences(of: "You review code.", with: "You audit code."))
        let changed = await env.run(previous: o.record)
        #expect(changed.result == .warmed(.prefill))
        #expect(!changed.events.contains { kind($0) == "samePrefix" })
    }

    @Test func aBodyTheServerRefusesFailsTheTemplateNamingTheServersReason() async throws {
        let env = try Env()
        defer { env.box.remove() }
        env.t.inject(.status(500, message: "tools param requires --jinja flag"), at: .post("/apply-template"))
        let o = await env.run()
        guard case .templateFailed(let why) = o.result else {
            Issue.record("expected a template failure, got \(o.result)")
            return
        }
        #expect(why.contains("refused to render the request (HTTP 500): tools param requires --jinja flag"), "\(why)")
        #expect(o.events.map(kind) == ["hashCompared", "renderRejected"])
        #expect(env.completionPrompts.isEmpty)
    }

    @Test func aRenderingWithoutTheUsersTurnIsRefused() async throws {
        let env = try Env()
        defer { env.box.remove() }
        env.t.respond(to: .post("/apply-template"), json: #"{"prompt": "<start_of_turn>user\nonly the system text<end_of_turn>\n"}"#)
        let o = await env.run()
        guard case .templateFailed(let why) = o.result else {
            Issue.record("expected a template failure, got \(o.result)")
            return
        }
        #expect(why.contains("exactly once"), "\(why)")
    }
}
