/// A failed call to llama-server, classified for logging (`REASON`).
///
/// The coordinator retries every case but ``cancelled`` with backoff, ``unauthorized``
/// and ``unsupported`` included.
public enum BackendError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing listening, or the socket is missing.
    case unreachable(String)
    /// 503: the model is still loading.
    case loading
    /// 401: the API key is missing or wrong.
    case unauthorized
    /// No complete answer within `backend.timeout_seconds`.
    case timeout
    /// The connection broke mid-response.
    case broken(String)
    /// Any other non-2xx answer.
    case http(status: Int, message: String)
    /// A 2xx answer that is not the JSON we expect.
    case malformed(String)
    /// The server lacks a feature (501), e.g. started without --slot-save-path.
    case unsupported(String)
    /// The task was cancelled (shutdown or reload).
    case cancelled
    /// A llama-server router answered that the template's model is not loaded (400, asked with
    /// `autoload=false`); kvwarm waits for it to load.
    case modelUnloaded(String)
    /// The backend is a router and the template names no model, or the template names a model
    /// and the backend is not a router (or has no such model).
    case routerMismatch(String)
    /// `backend.slot_save_dir` does not exist (yet): llama-server creates it when it starts.
    case slotDirectoryMissing(String)

    /// Short cause for the `REASON` log field.
    public var reason: String {
        switch self {
        case .unreachable: "unreachable"
        case .loading: "loading"
        case .unauthorized: "unauthorized"
        case .timeout: "timeout"
        case .broken: "connection_broken"
        case .http(let s, _): "http_\(s)"
        case .malformed: "malformed_response"
        case .unsupported: "unsupported"
        case .cancelled: "cancelled"
        case .modelUnloaded: "model_unloaded"
        case .routerMismatch: "router_mismatch"
        case .slotDirectoryMissing: "slot_save_dir_missing"
        }
    }

    /// Whether the failure may go away without an operator's action (server down,
    /// loading, slow, connection broken, 5xx, unexpected body).
    ///
    /// It does not decide whether a pass is retried; the coordinator drops its cached
    /// backend fingerprint on these, since a restarted server may be another one.
    public var isTransient: Bool {
        switch self {
        case .unreachable, .loading, .timeout, .broken, .malformed, .modelUnloaded, .slotDirectoryMissing: true
        case .http(let s, _): s >= 500
        case .unauthorized, .unsupported, .cancelled, .routerMismatch: false
        }
    }

    public var description: String {
        switch self {
        case .unreachable(let m): "backend unreachable: \(m)"
        case .loading: "backend is loading the model (503)"
        case .unauthorized: "backend rejected the API key (401): check backend.api_key_file"
        case .timeout: "backend did not answer within backend.timeout_seconds"
        case .broken(let m): "connection to the backend broke: \(m)"
        case .http(let s, let m): "backend answered \(s): \(m)"
        case .malformed(let m): "backend sent an unexpected response: \(m)"
        case .unsupported(let m): "backend does not support this: \(m)"
        case .cancelled: "cancelled"
        case .modelUnloaded(let m): "router model \(m) is not loaded"
        case .routerMismatch(let m): m
        case .slotDirectoryMissing(let p): "slot_save_dir \(p) does not exist yet (llama-server creates its --slot-save-path when it starts)"
        }
    }
}
