import Testing
@testable import KVWarm

@Suite struct PlaceholderScannerTests {
    func inner(_ text: String) -> [String] {
        PlaceholderScanner.tokens(in: text).map { String(text[$0.inner]) }
    }

    @Test func findsTokensInOrderAndResumesAfterEachClose() {
        #expect(inner("a <{x.txt}> b <{message}> c") == ["x.txt", "message"])
        #expect(inner("<{a}><{b}>") == ["a", "b"])
        #expect(inner("<{}>") == [""])
        #expect(inner("<{a<{b}> c}>") == ["a<{b"], "a token ends at the first }> after its <{")
    }

    @Test func anUnclosedOpenEndsTheScan() {
        #expect(inner("<{a}> then <{never closed") == ["a"])
        #expect(inner("no tokens } > < {") == [])
    }

    @Test func multiByteTextAroundAndInsideTokensIsKept() {
        let text = "Ünïcödé 🙂 <{日本.txt}> → <{message}>é"
        #expect(inner(text) == ["日本.txt", "message"])
        let t = PlaceholderScanner.tokens(in: text)
        #expect(String(text[t[0].whole]) == "<{日本.txt}>")
        #expect(String(text[t[1].whole.upperBound...]) == "é")
    }

    @Test func hexEncodingIsLowercaseTwoDigitsPerByte() {
        #expect(HexEncoding.lowercase([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(HexEncoding.lowercase([UInt8]()) == "")
    }
}
