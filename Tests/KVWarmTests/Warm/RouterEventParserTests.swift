import Testing
@testable import KVWarm

/// `GET /models/sse` frames, split anywhere, with the event name inside the JSON.
@Suite struct RouterEventParserTests {
    @Test func framesSplitAcrossChunksYieldEachEventOnce() {
        var p = RouterEventParser()
        let stream = #"data: {"model":"alpha","event":"model_status","data":{"status":"loading"}}"# + "\n\n"
            + #"data: {"model":"alpha","event":"status_change","data":{"status":"loaded","info":{}}}"# + "\r\n\r\n"
            + #"data: {"model":"*","event":"models_reload","data":{}}"# + "\n\n"
            + #"data: {"model":"beta","event":"status_change","data":{"status":"unloaded","exit_code":0}}"# + "\n"
        var events: [RouterEventParser.Event] = []
        let bytes = Array(stream.utf8)
        var i = 0
        while i < bytes.count {
            let n = min(7, bytes.count - i)
            events += p.feed(Array(bytes[i..<(i + n)]))
            i += n
        }
        #expect(events.map(\.model) == ["alpha", "alpha", "*"])
        #expect(events.map(\.status) == ["loading", "loaded", nil])
        #expect(events[1].event == "status_change")
        #expect(p.feed(Array("\n".utf8)) == [.init(model: "beta", event: "status_change", status: "unloaded")],
                "the last frame completes with its blank line")
        #expect(p.feed(Array("data: not json\n\n".utf8)).isEmpty)
    }
}
