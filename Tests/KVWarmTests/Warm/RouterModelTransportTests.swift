import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// Every call for a router model names the model (query and body) and never loads it.
@Suite struct RouterModelTransportTests {
    static func rewrite(_ method: String, _ path: String, _ body: String? = nil) -> HTTPRequest {
        RouterModelTransport(base: ScriptedTransport(), model: "org/alpha:Q4")
            .rewrite(HTTPRequest(method: method, path: path, body: body.map { Array($0.utf8) }, timeout: .seconds(1)))
    }

    static func json(_ r: HTTPRequest) -> [String: Any]? {
        r.body.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
    }

    @Test func queriesCarryTheModelAndAutoloadFalse() {
        #expect(Self.rewrite("GET", "/slots").path == "/slots?model=org%2Falpha%3AQ4&autoload=false")
        #expect(Self.rewrite("POST", "/slots/1?action=restore", #"{"filename":"f.bin"}"#).path
                == "/slots/1?action=restore&model=org%2Falpha%3AQ4&autoload=false")
        #expect(Self.rewrite("GET", "/health").path == "/props?model=org%2Falpha%3AQ4&autoload=false",
                "the router's own /health says nothing about a model")
    }

    @Test func jsonBodiesGetTheModelAsTheirLastMember() {
        let r = Self.rewrite("POST", "/completion", #" {"prompt":"x","n_predict":1} "#)
        #expect(Self.json(r)?["model"] as? String == "org/alpha:Q4")
        #expect(Self.json(r)?["prompt"] as? String == "x")
        let empty = Self.rewrite("POST", "/slots/0?action=erase", "{}")
        #expect(Self.json(empty)?.keys.sorted() == ["model"])
        // a request template's own "model" comes first, so the parser's last-wins keeps ours
        let own = String(decoding: Self.rewrite("POST", "/apply-template", #"{"model":"gpt-4o","messages":[]}"#).body!, as: UTF8.self)
        #expect(own.hasSuffix(#","model":"org\/alpha:Q4"}"#) || own.hasSuffix(#","model":"org/alpha:Q4"}"#), "\(own)")
        #expect(Self.rewrite("POST", "/x", "not json").body == Array("not json".utf8), "a body that is no object is left alone")
    }

    @Test func anUnloadedModelIsItsOwnError() async throws {
        let t = ScriptedTransport()
        t.respond(to: .init(method: "GET", path: "/slots"), status: 400,
                  json: #"{"error":{"code":400,"message":"model is not loaded","type":"invalid_request_error"}}"#)
        let client = LlamaClient(transport: t, timeout: .seconds(1), model: "alpha")
        await #expect(throws: BackendError.modelUnloaded("alpha")) { _ = try await client.slots() }
        #expect(BackendError.modelUnloaded("alpha").isTransient, "the monitor waits for the load")
        #expect(t.requests.first?.path == "/slots?model=alpha&autoload=false")
    }
}
