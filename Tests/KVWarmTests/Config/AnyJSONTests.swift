import Foundation
import Testing
@testable import KVWarm

struct AnyJSONTests {
    @Test func numbersKeepIntegerAndFractionApart() throws {
        let o = try #require(AnyJSON.object(Array(#"{"a": 5, "b": 5.0, "c": -2e3, "d": 12345678901, "e": 0.25}"#.utf8)))
        #expect(o["a"] as? Int == 5)
        #expect(o["b"] as? Double == 5.0)
        #expect(o["c"] as? Double == -2000)
        #expect(o["d"] as? Int == 12_345_678_901)
        #expect(AnyJSON.double(o["a"]) == 5 && AnyJSON.double(o["e"]) == 0.25)
        #expect(AnyJSON.int(o["b"]) == 5 && AnyJSON.int(o["e"]) == nil)
    }

    @Test func nullsNestingEscapesAndDuplicateKeysRefused() throws {
        let text = #"{"n": null, "t": true, "s": "a\"b\\c\u00e9\n", "a": [1, [2, {"x": "y"}]]}"#
        let o = try #require(AnyJSON.object(Array(text.utf8)))
        #expect(o["n"] is JSONNull)
        #expect(o["t"] as? Bool == true)
        #expect(o["s"] as? String == "a\"b\\cé\n")
        let a = try #require(o["a"] as? [Any])
        #expect(((a[1] as? [Any])?[1] as? [String: Any])?["x"] as? String == "y")
        #expect(AnyJSON.parse(Array(#"{"k": 1, "k": 2}"#.utf8)) == nil)
        #expect(AnyJSON.parse(Array("{".utf8)) == nil)
        #expect(AnyJSON.object(Array("[1]".utf8)) == nil)
    }

    @Test func writingRoundTripsAndFoundationReadsIt() throws {
        let value: [String: Any] = ["prompt": "line\n\t\"quoted\" / é \u{1}", "n_predict": 1, "temperature": 0.5,
                                    "cache_prompt": true, "none": JSONNull(), "list": [1, "two", [String: Any]()],
                                    "empty": [Any]()]
        let bytes = try #require(AnyJSON.serialize(value))
        let back = try #require(AnyJSON.object(bytes))
        #expect(back["prompt"] as? String == value["prompt"] as? String)
        #expect(back["temperature"] as? Double == 0.5)
        #expect(back["none"] is JSONNull)
        let foundation = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(foundation["prompt"] as? String == value["prompt"] as? String)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("\\/"), "slashes are not escaped")
    }

    @Test func prettySortedOutputIsStable() throws {
        let bytes = try #require(AnyJSON.serialize(["b": [1, 2], "a": ["x": JSONNull()], "c": [Any]()] as [String: Any],
                                                   sortedKeys: true, pretty: true))
        #expect(String(decoding: bytes, as: UTF8.self) == """
            {
              "a" : {
                "x" : null
              },
              "b" : [
                1,
                2
              ],
              "c" : []
            }
            """)
        #expect(AnyJSON.serialize(["x": Double.nan]) == nil)
        #expect(AnyJSON.serialize(["x": Date()]) == nil, "a type JSON cannot carry is refused")
        #expect(AnyJSON.quoted("a\"b") == #""a\"b""#)
    }
}
