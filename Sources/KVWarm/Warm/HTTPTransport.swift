/// One HTTP request to llama-server.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    /// Path and query, starting with `/`.
    public var path: String
    public var body: [UInt8]?
    public var timeout: Duration

    public init(method: String, path: String, body: [UInt8]? = nil, timeout: Duration) {
        self.method = method
        self.path = path
        self.body = body
        self.timeout = timeout
    }
}

/// A complete HTTP response.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// Why a request got no complete response.
public enum TransportFailure: Error, Sendable, Equatable {
    /// Nothing accepted the connection (refused, no such socket, unresolvable host).
    case connect(String)
    /// No complete answer within the request's timeout.
    case timeout
    /// The connection broke mid-response.
    case broken(String)
    /// The calling task was cancelled; the transfer was aborted.
    case cancelled
}

/// The seam between the warm stage and the network: libcurl in production,
/// scripted responses in unit tests.
public protocol HTTPTransport: Sendable {
    /// Sends `request`; the API key, if any, is added by the transport.
    func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse
}
