
/// Sends every request to one model of a llama-server router without ever loading it.
///
/// The router takes the model of a POST from the JSON body's `"model"` and of a GET from the
/// `?model=` query, and loads an unloaded model unless the query says `autoload=false`. So
/// each request gets `model=<name>&autoload=false` in its query, and a JSON object body gets
/// `"model"` as its last member (the last of duplicate keys wins in llama-server's parser, so
/// a request template's own `"model"` cannot send the warm elsewhere). The router's
/// `/health` is 200 whatever its models do; `GET /health` becomes `GET /props` of the model,
/// which fails with "model is not loaded" while it is unloaded.
public struct RouterModelTransport: HTTPTransport {
    public let base: any HTTPTransport
    public let model: String

    public init(base: any HTTPTransport, model: String) {
        self.base = base
        self.model = model
    }

    public func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
        try await base.send(rewrite(request))
    }

    /// The request as the router must see it.
    public func rewrite(_ request: HTTPRequest) -> HTTPRequest {
        var r = request
        if r.method == "GET", r.path == "/health" { r.path = "/props" }
        r.path += (r.path.contains("?") ? "&" : "?") + "model=" + Self.queryEscaped(model) + "&autoload=false"
        if let body = r.body { r.body = Self.withModel(body, model) }
        return r
    }

    /// `body` with `"model": model` as the last member when it is a JSON object; else unchanged.
    static func withModel(_ body: [UInt8], _ model: String) -> [UInt8] {
        let space: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        guard let open = body.firstIndex(where: { !space.contains($0) }), body[open] == UInt8(ascii: "{"),
              let close = body.lastIndex(where: { !space.contains($0) }), body[close] == UInt8(ascii: "}"),
              close > open
        else { return body }
        let literal = Array(AnyJSON.quoted(model).utf8)
        let empty = body[(open + 1)..<close].allSatisfy { space.contains($0) }
        return Array(body[..<close]) + Array((empty ? "" : ",").utf8) + Array("\"model\":".utf8) + literal
            + Array(body[close...])
    }

    /// `s` percent-encoded for a query value: every UTF-8 byte but ASCII letters, digits and `-._~`.
    static func queryEscaped(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
