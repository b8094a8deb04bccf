import CCurl
import Synchronization

/// ``HTTPTransport`` over libcurl's easy interface, for TCP and unix sockets.
///
/// Each request runs `curl_easy_perform` on a thread of ``CurlWorkerPool``, so
/// no thread of Swift's cooperative pool ever blocks on the network, and
/// consecutive requests reuse a handle and its keep-alive connection.
/// Cancelling the calling task aborts the transfer from curl's progress callback. The API key
/// is sent as `Authorization: Bearer` on every request and appears nowhere else.
public struct CurlTransport: HTTPTransport {
    public let address: BackendAddress
    private let apiKey: String?
    private let workers: CurlWorkerPool.Lease

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public init(address: BackendAddress, apiKey: String?) {
        self.init(address: address, apiKey: apiKey, workerThreadName: "kvwarm-curl")
    }

    /// With the pool's threads named `workerThreadName` (tests tell their own pool's threads apart).
    init(address: BackendAddress, apiKey: String?, workerThreadName: String) {
        _ = Self.globalInit
        self.address = address
        self.apiKey = apiKey
        workers = CurlWorkerPool.Lease(maxIdle: 2, threadName: workerThreadName)
    }

    public func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
        try await perform(request, onChunk: nil)
    }

    /// Sends `request` and hands each piece of the response body to `onChunk` as it arrives (on
    /// a curl worker thread) instead of collecting it; returns the status with an empty body when
    /// the server ends the response. For event streams (`GET /models/sse`).
    public func stream(_ request: HTTPRequest,
                       onChunk: @escaping @Sendable ([UInt8]) -> Void) async throws(TransportFailure) -> HTTPResponse {
        try await perform(request, onChunk: onChunk)
    }

    private func perform(_ request: HTTPRequest,
                         onChunk: (@Sendable ([UInt8]) -> Void)?) async throws(TransportFailure) -> HTTPResponse {
        let cancelFlag = CancelFlag()
        let url: String
        let socketPath: String?
        switch address {
        case .http(let base): url = base + request.path; socketPath = nil
        case .unixSocket(let p): url = "http://localhost" + request.path; socketPath = p
        }
        let job = CurlJob(url: url, socketPath: socketPath, method: request.method, body: request.body,
                          timeoutMS: Int(request.timeout.components.seconds * 1000
                                         + request.timeout.components.attoseconds / 1_000_000_000_000_000),
                          apiKey: apiKey, cancel: cancelFlag, onChunk: onChunk)
        let result: Result<HTTPResponse, TransportFailure> = await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Result<HTTPResponse, TransportFailure>, Never>) in
                workers.pool.run(job) { cont.resume(returning: $0) }
            }
        } onCancel: {
            cancelFlag.set()
        }
        return try result.get()
    }
}

/// Set from any thread to abort a transfer; read by curl's progress callback.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// Receives the body from curl's write callback. Used by one thread only
/// (the one running `curl_easy_perform`), so it needs no synchronisation.
private final class ResponseBuffer {
    var bytes: [UInt8] = []
    let cancel: CancelFlag
    let onChunk: (@Sendable ([UInt8]) -> Void)?
    init(cancel: CancelFlag, onChunk: (@Sendable ([UInt8]) -> Void)?) {
        self.cancel = cancel
        self.onChunk = onChunk
    }
}

/// Everything one transfer needs, owned by the thread that performs it.
struct CurlJob: Sendable {
    let url: String
    let socketPath: String?
    let method: String
    let body: [UInt8]?
    let timeoutMS: Int
    let apiKey: String?
    let cancel: CancelFlag
    /// When set, receives the body piece by piece instead of the buffer.
    var onChunk: (@Sendable ([UInt8]) -> Void)? = nil

    /// Runs the transfer on `h`, a handle just reset by its pool worker.
    func perform(on h: UnsafeMutableRawPointer) -> Result<HTTPResponse, TransportFailure> {
        let buffer = ResponseBuffer(cancel: cancel, onChunk: onChunk)
        let unmanaged = Unmanaged.passRetained(buffer)
        defer { unmanaged.release() }

        var headers: UnsafeMutablePointer<curl_slist>? = nil
        headers = curl_slist_append(headers, "Content-Type: application/json")
        headers = curl_slist_append(headers, "Accept: application/json")
        headers = curl_slist_append(headers, "Expect:")
        if let apiKey { headers = curl_slist_append(headers, "Authorization: Bearer \(apiKey)") }
        defer { curl_slist_free_all(headers) }

        _ = kvwarm_curl_setopt_string(h, CURLOPT_URL, url)
        if let socketPath { _ = kvwarm_curl_setopt_string(h, CURLOPT_UNIX_SOCKET_PATH, socketPath) }
        _ = kvwarm_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = kvwarm_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, max(1, timeoutMS))
        _ = kvwarm_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, min(max(1, timeoutMS), 10_000))
        _ = kvwarm_curl_setopt_slist(h, CURLOPT_HTTPHEADER, headers)
        // no proxies from the environment: the backend is local
        _ = kvwarm_curl_setopt_string(h, CURLOPT_NOPROXY, "*")
        if method == "POST" {
            _ = kvwarm_curl_setopt_long(h, CURLOPT_POST, 1)
            let b = body ?? []
            _ = kvwarm_curl_setopt_long(h, CURLOPT_POSTFIELDSIZE, b.count)
            b.withUnsafeBytes { raw in
                // COPYPOSTFIELDS copies now, so the buffer need not outlive this call
                _ = kvwarm_curl_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS,
                                               UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        } else if method != "GET" {
            _ = kvwarm_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, method)
        }
        _ = kvwarm_curl_setopt_pointer(h, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        _ = kvwarm_curl_setopt_write(h) { ptr, size, n, user in
            guard let user, let ptr else { return 0 }
            let buf = Unmanaged<ResponseBuffer>.fromOpaque(user).takeUnretainedValue()
            let count = size * n
            if let f = buf.onChunk {
                f(Array(UnsafeRawBufferPointer(start: ptr, count: count)))
            } else {
                buf.bytes.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: count))
            }
            return count
        }
        _ = kvwarm_curl_setopt_long(h, CURLOPT_NOPROGRESS, 0)
        _ = kvwarm_curl_setopt_pointer(h, CURLOPT_XFERINFODATA, unmanaged.toOpaque())
        _ = kvwarm_curl_setopt_xferinfo(h) { user, _, _, _, _ in
            guard let user else { return 0 }
            return Unmanaged<ResponseBuffer>.fromOpaque(user).takeUnretainedValue().cancel.isSet ? 1 : 0
        }
        if cancel.isSet { return .failure(.cancelled) }
        let code = curl_easy_perform(h)
        if cancel.isSet { return .failure(.cancelled) }
        switch code {
        case CURLE_OK:
            var status = 0
            _ = kvwarm_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
            return .success(HTTPResponse(status: status, body: buffer.bytes))
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(.timeout)
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .failure(.connect(String(cString: curl_easy_strerror(code))))
        case CURLE_ABORTED_BY_CALLBACK:
            return .failure(.cancelled)
        default:
            return .failure(.broken(String(cString: curl_easy_strerror(code))))
        }
    }
}
