import Testing
@testable import KVWarm

@Suite struct JSONDocumentParserTests {
    func parse(_ text: String) throws(JSONSyntaxError) -> JSONNode {
        try JSONDocumentParser.parse(Array(text.utf8))
    }

    func syntaxError(_ text: String) -> JSONSyntaxError? {
        do {
            _ = try parse(text)
            return nil
        } catch { return error }
    }

    @Test func valuesRememberTheLineTheyStartOn() throws {
        let node = try parse("{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null\n  ],\n  \"c\": \"x\"\n}")
        #expect(node.line == 1)
        guard case .object(let members) = node.value else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["a", "b", "c"])
        #expect(members.map(\.value.line) == [2, 3, 7])
        guard case .array(let items) = members[1].value.value else { Issue.record("b is not an array"); return }
        #expect(items.map(\.line) == [4, 5])
        #expect(items.map(\.value) == [.bool(true), .null])
        #expect(members[0].value.value == .number(1))
        #expect(members[2].value.value == .string("x"))
    }

    @Test func syntaxErrorsCarryTheirLine() {
        // missing comma between members on line 3
        let e = syntaxError("{\n  \"a\": 1\n  \"b\": 2\n}")
        #expect(e?.line == 3)
        // trailing comma: the error is where the next key was expected (line 4)
        #expect(syntaxError("{\n\"a\": 1,\n\n}")?.line == 4)
        // unterminated string on line 2
        #expect(syntaxError("[\n\"abc\n]")?.line == 2)
        // bad literal on line 5, column 3
        let lit = syntaxError("[\n1,\n2,\n3,\n  nul]")
        #expect(lit?.line == 5)
        #expect(lit?.column == 3)
    }

    @Test func crlfLineEndingsCountOnce() {
        #expect(syntaxError("{\r\n\"a\": 1,\r\n\"b\" 2\r\n}")?.line == 3)
    }

    @Test func duplicateKeysAreRejectedAtTheDuplicate() {
        let e = syntaxError("{\n  \"a\": 1,\n  \"b\": 2,\n  \"a\": 3\n}")
        #expect(e != nil)
        #expect(e?.line == 4)
        #expect(e?.message.contains("duplicate") == true)
        #expect(e?.message.contains("\"a\"") == true)
        // nested objects have their own key spaces
        #expect(syntaxError("{\"a\": {\"a\": 1}, \"b\": {\"a\": 2}}") == nil)
        // keys equal after unescaping are duplicates
        #expect(syntaxError("{\"a\": 1, \"\\u0061\": 2}") != nil)
    }

    @Test func surrogatePairsDecodeAndLoneSurrogatesFail() throws {
        #expect(try parse("\"\\ud83d\\ude00\"").value == .string("😀"))
        #expect(try parse("\"\\uD834\\uDD1E\"").value == .string("𝄞"))
        #expect(try parse("\"\\u00e9\\u20AC\"").value == .string("é€"))
        #expect(syntaxError("\"\\ud83d\"") != nil, "high surrogate alone")
        #expect(syntaxError("\"\\ude00\"") != nil, "low surrogate alone")
        #expect(syntaxError("\"\\ud83d\\u0041\"") != nil, "high surrogate followed by a non-surrogate")
        #expect(syntaxError("\"\\ud83dx\"") != nil, "high surrogate followed by text")
        #expect(syntaxError("\"\\u12\"") != nil, "truncated escape")
        #expect(syntaxError("\"\\u12g4\"") != nil, "bad hex digit")
    }

    @Test func trailingContentIsAnError() throws {
        #expect(syntaxError("{} x") != nil)
        #expect(syntaxError("{}\n\n}")?.line == 3)
        #expect(syntaxError("1 2") != nil)
        #expect(syntaxError("01") != nil, "leading zeros")
        #expect(try parse("  {}  \n\t\r\n").value == .object([]))
    }

    @Test func strictnessOfStringsNumbersAndDepth() throws {
        #expect(syntaxError("\"a\tb\"") != nil, "raw control character in a string")
        #expect(syntaxError("\"\\x\"") != nil, "unknown escape")
        #expect(syntaxError("1.") != nil)
        #expect(syntaxError("1e") != nil)
        #expect(syntaxError("-") != nil)
        #expect(syntaxError("+1") != nil)
        #expect(syntaxError("") != nil)
        #expect(syntaxError("[1,]") != nil)
        #expect(syntaxError("{'a': 1}") != nil)
        #expect(syntaxError(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)) != nil)
        #expect(try parse(String(repeating: "[", count: 60) + String(repeating: "]", count: 60)).line == 1)
        #expect(try parse("-1.5e2").value == .number(-150))
        #expect(try parse("\"a\\n\\\"\\/\\\\\"").value == .string("a\n\"/\\"))
        // invalid UTF-8 inside a string
        #expect((try? JSONDocumentParser.parse([0x22, 0xFF, 0x22])) == nil)
        // a UTF-8 BOM is skipped
        #expect(try JSONDocumentParser.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)).value == .object([]))
    }
}
