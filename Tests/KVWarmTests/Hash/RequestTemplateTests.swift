import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// Request templates (`.json` chat-completions bodies): what is accepted, what is refused with
/// line and key, and that the body reaches the server in the file's own bytes and key order.
@Suite struct RequestTemplateTests {
    static let agent = """
    {
      "model": "local",
      "tools": [
        {"type": "function", "function": {"name": "grep", "parameters": {"type": "object", "properties": {"q": {"type": "string"}, "path": {"type": "string"}}}}}
      ],
      "messages": [
        {"role": "system", "content": "You review code. <{style.txt}>"},
        {"role": "user", "content": "Review: <{message}>"}
      ],
      "chat_template_kwargs": {"enable_thinking": false}
    }
    """

    func problem(_ text: String) -> RequestTemplate.Problem? {
        do { _ = try RequestTemplate.parse(text); return nil } catch { return error }
    }

    @Test func aValidBodyKeepsItsBytesAndKeyOrderAndExpandsIncludes() throws {
        let parsed = try RequestTemplate.parse(Self.agent)
        #expect(parsed.includeReferences == ["style.txt"])
        #expect(parsed.fields == ["model", "tools", "messages", "chat_template_kwargs"])
        #expect(parsed.toolCount == 1 && parsed.messageCount == 2)
        let r = parsed.expanded(includes: ["style.txt": "Be \"brief\".\nNo <{message}> here."])
        // everything but the rewritten string is the file byte for byte: "q" still precedes "path"
        let toolsLine = try #require(Self.agent.split(separator: "\n").first { $0.contains("grep") })
        #expect(r.body.contains(toolsLine))
        #expect(r.body.contains(#""content": "You review code. Be \"brief\".\nNo \u003c{message}> here.""#), "\(r.body)")
        #expect(r.body.components(separatedBy: RequestTemplate.placeholder).count == 2, "the include cannot pose as the user's turn")
        let sent = r.body(message: "a \"quoted\"\nline")
        let decoded = try JSONSerialization.jsonObject(with: Data(sent.utf8)) as? [String: Any]
        let messages = try #require(decoded?["messages"] as? [[String: Any]])
        #expect(messages[1]["content"] as? String == "Review: a \"quoted\"\nline")
        #expect(messages[0]["content"] as? String == "You review code. Be \"brief\".\nNo <{message}> here.")
    }

    @Test func textPartsCarryThePlaceholderToo() throws {
        let body = #"{"messages": [{"role": "user", "content": [{"type": "text", "text": "Q: <{message}>"}]}]}"#
        let r = try RequestTemplate.parse(body).expanded(includes: [:])
        #expect(r.body == body, "nothing to expand: the body is the file")
    }

    @Test(arguments: [
        ("[1, 2]", 1, "", "expected a chat-completions request object"),
        ("{\n \"model\": \"x\"\n}", 1, "messages", "missing"),
        ("{\"messages\": []}", 1, "messages", "non-empty array"),
        ("{\"messages\": [\n {\"content\": \"<{message}>\"}\n]}", 2, "messages[0].role", "missing"),
        ("{\"messages\": [\n {\"role\": \"system\", \"content\": \"x\"},\n {\"role\": \"user\", \"content\": \"no placeholder\"}\n]}", 3,
         "messages[1].content", "no <{message}>"),
        ("{\"messages\": [\n {\"role\": \"user\", \"content\": \"<{message}>\"},\n {\"role\": \"user\", \"content\": \"again <{message}>\"}\n]}", 3,
         "messages[1].content", "a second <{message}>"),
        ("{\"messages\": [\n {\"role\": \"user\", \"content\": \"<{message}>\"},\n {\"role\": \"assistant\", \"content\": \"ok\"}\n]}", 3,
         "messages[1].role", "the last message must be the user's turn"),
        ("{\"messages\": [\n {\"role\": \"system\", \"content\": \"<{message}>\"},\n {\"role\": \"user\", \"content\": \"hi\"}\n]}", 2,
         "messages[0].content", "must be in the content of the last message"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": [\n {\"type\": \"image_url\", \"image_url\": {\"url\": \"x\"}},\n {\"type\": \"text\", \"text\": \"<{message}>\"}]}]}", 2,
         "messages[0].content[0].type", "cannot be warmed"),
        ("{\"tools\": {},\n \"messages\": [{\"role\": \"user\", \"content\": \"<{message}>\"}]}", 1, "tools", "expected an array"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"<{message}>\"}],\n \"chat_template_kwargs\": [1]}", 2,
         "chat_template_kwargs", "expected an object"),
        ("{\"messages\": [{\"role\": \"user\",\n \"content\": \"<{message}>\",,}]}", 2, "", "column"),
        ("{\"messages\": [], \"messages\": []}", 1, "", "duplicate"),
    ] as [(String, Int, String, String)])
    func badBodiesNameTheLineAndKey(body: String, line: Int, key: String, says: String) {
        let p = problem(body)
        #expect(p?.line == line, "\(String(describing: p))")
        #expect(p?.key == key, "\(String(describing: p))")
        #expect(p?.message.contains(says) == true, "\(String(describing: p))")
    }

    @Test func theLoaderReadsIncludesInsideStringsWithTheSameConfinement() throws {
        let dir = try TemporaryDirectory("kvreq")
        defer { dir.remove() }
        try dir.write("tpl/style.txt", "Short answers.")
        try dir.write("tpl/agent.json", Self.agent)
        try dir.write("outside.txt", "secret")
        let loader = SnapshotLoader(includeRoots: [dir.file("tpl")], maxBytes: 1 << 20)
        let spec = TemplateSpec(name: "agent", path: dir.file("tpl/agent.json"))
        let s = try loader.load(spec).get()
        #expect(s.request?.body.contains("You review code. Short answers.") == true)
        #expect(s.dependencyPaths == [dir.file("tpl/agent.json"), dir.file("tpl/style.txt")])
        let before = s.digest
        try dir.write("tpl/style.txt", "Long answers.")
        #expect(try loader.load(spec).get().digest != before, "an include edit changes the digest")

        try dir.write("tpl/agent.json", Self.agent.replacingOccurrences(of: "<{style.txt}>", with: "<{../outside.txt}>"))
        guard case .failure(.includeOutsideRoots) = loader.load(spec) else {
            Issue.record("an include outside include_roots must fail")
            return
        }
        try dir.write("tpl/agent.json", "{\"messages\": 3}")
        guard case .failure(let p) = loader.load(spec) else { Issue.record("a bad body must fail"); return }
        #expect(p.description == "\(dir.file("tpl/agent.json")):1: messages: expected a non-empty array of messages")
        #expect(p.reason == "request_invalid")
    }
}
