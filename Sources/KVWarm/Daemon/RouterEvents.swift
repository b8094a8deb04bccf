import Logging
import ServiceLifecycle
import Synchronization

/// The seam for a response read piece by piece (libcurl in production).
public protocol EventStreamTransport: Sendable {
    func stream(_ request: HTTPRequest,
                onChunk: @escaping @Sendable ([UInt8]) -> Void) async throws(TransportFailure) -> HTTPResponse
}

extension CurlTransport: EventStreamTransport {}

/// Follows a router's `GET /models/sse` and wakes a model's backend monitor as soon as the
/// model loads or unloads, so its templates are restored right after the load instead of at
/// the next once-a-second probe (which stays the fallback while the stream is down).
///
/// The stream has no keepalive and no snapshot: every (re)connect wakes every monitor once,
/// in case an event was missed; a stream that ends or fails is reopened after `retry`.
public struct RouterEvents: Service {
    public let transport: any EventStreamTransport
    /// The wake of each model's monitor, by router model name.
    public let wakes: [String: CheckWake]
    public let logger: Logger
    public var retry: Duration = .seconds(2)

    public init(transport: any EventStreamTransport, wakes: [String: CheckWake], logger: Logger) {
        self.transport = transport
        self.wakes = wakes
        self.logger = logger
    }

    public func run() async throws {
        var failing = false
        while !Task.isCancelled {
            let parser = Mutex(RouterEventParser())
            let wakes = self.wakes
            let logger = self.logger
            for w in wakes.values { w.poke() }
            let result: Result<HTTPResponse, TransportFailure>
            do {
                result = .success(try await transport.stream(
                    HTTPRequest(method: "GET", path: "/models/sse", timeout: .seconds(86_400))) { bytes in
                        for e in parser.withLock({ $0.feed(bytes) }) {
                            guard let w = wakes[e.model] else { continue }
                            logger.debug("router model \(e.model): \(e.event) \(e.status ?? "")",
                                         metadata: .stage(.backend, .backendChanged, [
                                             LogField.model: .string(e.model), LogField.reason: .string(e.status ?? e.event),
                                         ]))
                            w.poke()
                        }
                    })
            } catch {
                result = .failure(error)
            }
            if Task.isCancelled { return }
            let why: String
            switch result {
            case .failure(.cancelled): return
            case .failure(let e): why = "\(e)"
            case .success(let r) where r.status != 200: why = "GET /models/sse answered \(r.status)"
            case .success: why = "the router closed GET /models/sse"
            }
            if !failing {
                logger.info("router event stream ended (\(why)); model loads are seen by polling every second until it is back",
                            metadata: .stage(.backend, .backendUnavailable, [LogField.reason: .string("router_events")]))
            }
            failing = true
            do { try await Task.sleep(for: retry) } catch { return }
        }
    }
}
