/// Turns a ``RenderedTemplate`` into the exact prefix real requests will share.
///
/// - completion endpoint: the rendered text up to `<{message}>`.
/// - chat endpoint: the conversation is rendered by the server's own chat
///   template (`POST /apply-template`) with a sentinel where the user's message
///   goes, and cut at the sentinel. Warming the whole message instead (as
///   bioproxy does) leaves SWA models able to reuse only what lies before their
///   last context checkpoint; the exact prefix is reused almost entirely.
///
/// Role `user`: the template is the user message, the question continues it.
/// Role `system`: the template (message placeholder empty) is the system
/// message and the question is the following user message.
public struct WarmPromptBuilder: Sendable {
    /// Stands in for the user's message; never sent to the model.
    public static let sentinel = "\u{2063}kvwarm-message-sentinel-5c1e\u{2063}"

    public let client: LlamaClient

    public init(client: LlamaClient) { self.client = client }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case backend(BackendError)
        /// The server's chat template dropped or rewrote the message.
        case sentinelLost
        /// The server refused to render a request template (its status and message).
        case rejected(status: Int, message: String)

        public var description: String {
            switch self {
            case .backend(let e): e.description
            case .sentinelLost: "the server's chat template dropped the message; use \"endpoint\": \"completion\""
            case .rejected(let status, let message): "llama-server refused to render the request (HTTP \(status)): \(message)"
            }
        }
    }

    /// The full prompt the server renders for a request template (sentinel included).
    ///
    /// A 4xx or 5xx answer other than 503 (e.g. "tools param requires --jinja flag") is the
    /// template's problem, not an outage: ``Failure/rejected(status:message:)``.
    public func serverRendering(_ request: RequestTemplate) async throws(Failure) -> String {
        do {
            return try await client.applyTemplate(rawBody: request.body(message: Self.sentinel))
        } catch {
            if case .http(let status, let message) = error, status != 503 { throw .rejected(status: status, message: message) }
            throw .backend(error)
        }
    }

    /// The warm prompt of a request template: everything before the user's message, which
    /// must appear exactly once in the server's rendering.
    public func prefix(_ request: RequestTemplate) async throws(Failure) -> String {
        try Self.cut(try await serverRendering(request), exactlyOnce: true)
    }

    /// The text of a server rendering before the sentinel; `exactlyOnce` also refuses a
    /// rendering that repeats it (a request template has one user turn).
    public static func cut(_ full: String, exactlyOnce: Bool) throws(Failure) -> String {
        guard let r = full.firstRange(of: sentinel) else { throw .sentinelLost }
        if exactlyOnce, full[r.upperBound...].firstRange(of: sentinel) != nil { throw .sentinelLost }
        return String(full[..<r.lowerBound])
    }

    /// The messages sent to `/apply-template` for `rendered` under `spec`.
    public static func messages(for rendered: RenderedTemplate, role: TemplateRole) -> [(role: String, content: String)] {
        switch role {
        case .user:
            return [("user", rendered.beforeMessage + sentinel + rendered.afterMessage)]
        case .system:
            return [("system", rendered.withEmptyMessage), ("user", sentinel)]
        }
    }

    /// The full prompt text the server renders (sentinel included), for chat templates.
    public func serverRendering(_ rendered: RenderedTemplate, spec: TemplateSpec) async throws(Failure) -> String {
        switch spec.endpoint {
        case .completion:
            return rendered.beforeMessage + Self.sentinel + rendered.afterMessage
        case .chat:
            do {
                return try await client.applyTemplate(messages: Self.messages(for: rendered, role: spec.role))
            } catch { throw .backend(error) }
        }
    }

    /// The warm prompt: everything before the user's message.
    public func prefix(_ rendered: RenderedTemplate, spec: TemplateSpec) async throws(Failure) -> String {
        if spec.endpoint == .completion { return rendered.beforeMessage }
        return try Self.cut(try await serverRendering(rendered, spec: spec), exactlyOnce: false)
    }
}
