
/// Typed calls to the llama-server HTTP API that kvwarm uses.
public struct LlamaClient: Sendable {
    public let transport: any HTTPTransport
    public var timeout: Duration
    /// The router model every call is for (its transport is a ``RouterModelTransport``); nil for a
    /// single-model server.
    public let model: String?

    /// A client of a single-model server, or, with `model`, of that model behind a llama-server
    /// router (every call then goes through a ``RouterModelTransport``).
    public init(transport: any HTTPTransport, timeout: Duration, model: String? = nil) {
        self.transport = model.map { RouterModelTransport(base: transport, model: $0) } ?? transport
        self.timeout = timeout
        self.model = model
    }

    // MARK: - responses

    /// One entry of `GET /slots`.
    public struct SlotInfo: Sendable, Equatable {
        public var id: Int
        public var nCtx: Int
        public var isProcessing: Bool
        public var idTask: Int?
        /// Tokens held in the slot's KV, when the slot has had a task.
        public var promptTokens: Int?
        /// Prompt tokens the running task reused from the cache (`n_prompt_tokens_cache`; 0 once it ended).
        public var cachedTokens: Int? = nil
    }

    /// What a completion reported about its prompt.
    public struct CompletionResult: Sendable, Equatable {
        public var slot: Int
        /// Prompt tokens in total (`tokens_evaluated`).
        public var promptTokens: Int
        /// Prompt tokens reused from the cache (`timings.cache_n`).
        public var cachedTokens: Int
        /// Prompt tokens actually decoded (`timings.prompt_n`).
        public var processedTokens: Int
        public var promptMS: Double
    }

    public struct SaveResult: Sendable, Equatable {
        public var savedTokens: Int
        public var bytesWritten: Int
    }

    // MARK: - calls

    /// `GET /health`: nil when ready; the error otherwise.
    public func health() async -> BackendError? {
        do { _ = try await call("GET", "/health", timeout: .seconds(5)); return nil } catch { return error }
    }

    public func props() async throws(BackendError) -> [String: Any] {
        try object(await call("GET", "/props"))
    }

    public func models() async throws(BackendError) -> [String: Any] {
        try object(await call("GET", "/v1/models"))
    }

    public func slots() async throws(BackendError) -> [SlotInfo] {
        let body = try await call("GET", "/slots")
        guard let arr = AnyJSON.parse(body) as? [[String: Any]] else {
            throw .malformed("GET /slots is not an array of objects")
        }
        return try arr.map { (o) throws(BackendError) in
            guard let id = Self.int(o["id"]) else { throw .malformed("GET /slots entry without id") }
            return SlotInfo(id: id, nCtx: Self.int(o["n_ctx"]) ?? 0,
                            isProcessing: (o["is_processing"] as? Bool) ?? false,
                            idTask: Self.int(o["id_task"]), promptTokens: Self.int(o["n_prompt_tokens"]),
                            cachedTokens: Self.int(o["n_prompt_tokens_cache"]))
        }
    }

    /// `POST /apply-template`: the server's own chat template applied to `messages`.
    public func applyTemplate(messages: [(role: String, content: String)]) async throws(BackendError) -> String {
        let body: [String: Any] = ["messages": messages.map { ["role": $0.role, "content": $0.content] }]
        let o = try object(await call("POST", "/apply-template", json: body))
        guard let p = o["prompt"] as? String else { throw .malformed("/apply-template without prompt") }
        return p
    }

    /// `POST /apply-template` of a request body sent as is (its key order kept); returns `prompt`.
    public func applyTemplate(rawBody: String) async throws(BackendError) -> String {
        let o = try object(await call("POST", "/apply-template", raw: Array(rawBody.utf8)))
        guard let p = o["prompt"] as? String else { throw .malformed("/apply-template without prompt") }
        return p
    }

    /// `POST /tokenize` with special tokens added, as `/completion` tokenizes a string prompt.
    public func tokenize(_ text: String) async throws(BackendError) -> [Int] {
        let o = try object(await call("POST", "/tokenize",
                                      json: ["content": text, "add_special": true, "parse_special": true]))
        guard let toks = o["tokens"] as? [Any] else { throw .malformed("/tokenize without tokens") }
        return toks.compactMap { Self.int($0) }
    }

    /// `POST /completion` of `prompt` with `predict` predicted tokens (default 1), caching the prompt in
    /// `slot` (-1: server's choice).
    public func complete(prompt: String, slot: Int, predict: Int = 1,
                         timeout: Duration? = nil) async throws(BackendError) -> CompletionResult {
        let body: [String: Any] = ["prompt": prompt, "n_predict": predict, "cache_prompt": true, "id_slot": slot,
                                   "temperature": 0, "stream": false]
        let o = try object(await call("POST", "/completion", json: body, timeout: timeout))
        guard let t = o["timings"] as? [String: Any], let evaluated = Self.int(o["tokens_evaluated"]) else {
            throw .malformed("/completion without timings or tokens_evaluated")
        }
        let cached = Self.int(t["cache_n"]) ?? 0
        return CompletionResult(slot: Self.int(o["id_slot"]) ?? slot, promptTokens: evaluated, cachedTokens: cached,
                                processedTokens: Self.int(t["prompt_n"]) ?? max(0, evaluated - cached),
                                promptMS: AnyJSON.double(t["prompt_ms"]) ?? 0)
    }

    /// `POST /slots/{id}?action=save`.
    public func saveSlot(_ slot: Int, fileName: String) async throws(BackendError) -> SaveResult {
        let o = try object(await call("POST", "/slots/\(slot)?action=save", json: ["filename": fileName]))
        guard let n = Self.int(o["n_saved"]) else { throw .malformed("save without n_saved") }
        return SaveResult(savedTokens: n, bytesWritten: Self.int(o["n_written"]) ?? 0)
    }

    public struct RestoreResult: Sendable, Equatable {
        /// Tokens the slot holds after the restore (`n_restored`).
        public var restoredTokens: Int
        /// The server's time for the restore (`timings.restore_ms`; 0 when absent).
        public var restoreMS: Double
    }

    /// `POST /slots/{id}?action=restore`; an answer without `n_restored` is malformed.
    @discardableResult
    public func restoreSlot(_ slot: Int, fileName: String) async throws(BackendError) -> RestoreResult {
        let o = try object(await call("POST", "/slots/\(slot)?action=restore", json: ["filename": fileName]))
        guard let n = Self.int(o["n_restored"]) else { throw .malformed("restore without n_restored") }
        let ms = AnyJSON.double((o["timings"] as? [String: Any])?["restore_ms"]) ?? 0
        return RestoreResult(restoredTokens: n, restoreMS: ms)
    }

    // MARK: - plumbing

    static func int(_ v: Any?) -> Int? { AnyJSON.int(v) }

    private func object(_ body: [UInt8]) throws(BackendError) -> [String: Any] {
        guard let o = AnyJSON.object(body) else {
            throw .malformed("response is not a JSON object")
        }
        return o
    }

    /// Sends one request and maps failures to ``BackendError``.
    func call(_ method: String, _ path: String, json: [String: Any]? = nil,
              timeout: Duration? = nil) async throws(BackendError) -> [UInt8] {
        var body: [UInt8]?
        if let json {
            guard let d = AnyJSON.serialize(json) else { throw .malformed("cannot encode request body") }
            body = d
        }
        return try await call(method, path, raw: body, timeout: timeout)
    }

    /// Sends one request with `raw` as its JSON body and maps failures to ``BackendError``.
    func call(_ method: String, _ path: String, raw body: [UInt8]?,
              timeout: Duration? = nil) async throws(BackendError) -> [UInt8] {
        let response: HTTPResponse
        do {
            response = try await transport.send(HTTPRequest(method: method, path: path, body: body,
                                                             timeout: timeout ?? self.timeout))
        } catch {
            switch error {
            case .connect(let m): throw .unreachable(m)
            case .timeout: throw .timeout
            case .broken(let m): throw .broken(m)
            case .cancelled: throw .cancelled
            }
        }
        switch response.status {
        case 200..<300: return response.body
        case 401: throw .unauthorized
        case 503 where Self.errorMessage(response.body).lowercased().contains("loading"): throw .loading
        case 501: throw .unsupported(Self.errorMessage(response.body))
        case 400 where Self.errorMessage(response.body) == "model is not loaded":
            throw .modelUnloaded(model ?? "?")
        default: throw .http(status: response.status, message: Self.errorMessage(response.body))
        }
    }

    static func errorMessage(_ body: [UInt8]) -> String {
        if let o = AnyJSON.object(body),
           let e = o["error"] as? [String: Any], let m = e["message"] as? String {
            return String(m.prefix(300))
        }
        return String(decoding: body.prefix(300), as: UTF8.self)
    }
}
