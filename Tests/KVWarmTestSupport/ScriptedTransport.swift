import Foundation
import KVWarm
import Synchronization

/// An in-process ``HTTPTransport`` that answers like a healthy single-model llama-server.
///
/// The default answers follow the JSON shapes of `Tests/Fixtures/fake_llama_server.py`:
/// `/health`, `/props`, `/v1/models`, `/slots`, `/completion`, `/slots/N?action=save|restore|erase`,
/// `/apply-template` (a Gemma-like chat template) and `/tokenize`. Each slot keeps the tokens of
/// its last prompt, so a completion reports `timings.cache_n` as the common prefix with that
/// prompt (at most all but the last token), and a restore of a saved file makes the next
/// completion of the same prompt on that slot cached. Slots never show `is_processing`.
///
/// Tokens come from ``tokenize(_:addSpecial:)``: a leading `<bos>` and then one token per
/// whitespace-separated word.
///
/// Requests pass through three layers, each looked up newest rule first:
/// 1. a fault set with ``inject(_:at:times:)`` (counted down and dropped after `times` uses),
/// 2. an answer set with ``respond(to:with:)``,
/// 3. the emulated server.
///
/// Every request is recorded before any of that, in arrival order (``requests``;
/// ``waitForRequests(_:)`` awaits a count). A request from a cancelled task is recorded and
/// fails with `TransportFailure.cancelled` without using up a fault.
public final class ScriptedTransport: HTTPTransport {
    // MARK: - configuration

    /// What the emulated server reports about itself.
    public struct Backend: Sendable, Equatable {
        public var slots: Int
        /// Per-slot context (`n_ctx`); prompts of this many tokens or more get 400.
        public var nCtx: Int
        public var modelPath: String
        public var buildInfo: String
        public var chatTemplate: String
        public var nVocab = 262_144
        public var nCtxTrain = 131_072
        public var nEmbd = 2560
        public var nParams = 3_880_263_168
        public var modelSize = 2_489_757_696
        /// Where saves are written and restores are read; nil keeps saved token lists in memory by file name.
        public var slotSaveDirectory: String?
        /// The SWA trap: the first completion on a slot after a restore finds nothing cached.
        public var forgetsRestoredKV: Bool
        /// `timings.prompt_ms` reported per decoded prompt token.
        public var promptMSPerToken = 0.1

        public init(slots: Int = 4, nCtx: Int = 4096,
                    modelPath: String = "/models/fake-gemma-3-4b-it-Q4_K_M.gguf",
                    buildInfo: String = "b0-scripted", chatTemplate: String = ScriptedTransport.gemmaChatTemplate,
                    slotSaveDirectory: String? = nil, forgetsRestoredKV: Bool = false) {
            precondition(slots >= 1, "a server has at least one slot")
            self.slots = slots
            self.nCtx = nCtx
            self.modelPath = modelPath
            self.buildInfo = buildInfo
            self.chatTemplate = chatTemplate
            self.slotSaveDirectory = slotSaveDirectory
            self.forgetsRestoredKV = forgetsRestoredKV
        }
    }

    /// The `chat_template` reported by `/props` (the text only; `/apply-template` is built in).
    public static let gemmaChatTemplate =
        "{{ bos_token }}{%- for message in messages -%}"
        + "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' "
        + "+ message['content'] | trim + '<end_of_turn>\\n' }}{%- endfor -%}"
        + "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"

    /// Which requests a fault or an answer applies to.
    public struct Match: Sendable, Hashable, CustomStringConvertible {
        /// nil: any method.
        public var method: String?
        /// nil: any path. Ending in `*`: a prefix of path and query. Containing `?`: path and
        /// query exactly. Otherwise the path without its query.
        public var path: String?

        public init(method: String? = nil, path: String? = nil) {
            self.method = method
            self.path = path
        }

        public static func get(_ path: String) -> Match { Match(method: "GET", path: path) }
        public static func post(_ path: String) -> Match { Match(method: "POST", path: path) }
        /// Every request.
        public static let any = Match()

        /// Whether `request` is one of those this matches.
        public func matches(_ request: HTTPRequest) -> Bool {
            if let method, method.uppercased() != request.method.uppercased() { return false }
            guard let path else { return true }
            if path.hasSuffix("*") { return request.path.hasPrefix(path.dropLast()) }
            if path.contains("?") { return request.path == path }
            return ScriptedTransport.route(of: request.path) == path
        }

        public var description: String { "\(method ?? "*") \(path ?? "*")" }
    }

    /// A failure injected in front of the emulated server.
    public enum Fault: Sendable {
        /// Nothing accepts the connection (`TransportFailure.connect`).
        case connectFailure(String)
        /// The request's timeout passes without an answer (`TransportFailure.timeout`), at once.
        case timeout
        /// The connection breaks mid-response (`TransportFailure.broken`).
        case brokenConnection(String)
        /// A non-2xx answer with llama-server's error body `{"error": {code, message, type}}`.
        case status(Int, message: String)
        /// A 200 answer whose body is `body` as it is.
        case malformedBody(String)
        /// Waits until the gate opens, then answers as without the fault; cancellation ends the
        /// wait with `TransportFailure.cancelled`.
        case hold(Gate)
        /// Waits `duration`, then answers as without the fault; cancellation ends the wait with
        /// `TransportFailure.cancelled`.
        case delay(Duration)

        public static let refused = Fault.connectFailure("Failed to connect to 127.0.0.1 port 8080: Connection refused")
        public static let unauthorized = Fault.status(401, message: "Invalid API Key")
        public static let loadingModel = Fault.status(503, message: "Loading model")
        public static let internalError = Fault.status(500, message: "Internal Server Error")
        public static let notJSON = Fault.malformedBody("{\"prompt\": <html>")
    }

    /// Holds requests (``Fault/hold(_:)``) until a test opens it.
    public final class Gate: Sendable {
        private struct ArrivalWaiter {
            var id: UInt64
            var count: Int
            var continuation: CheckedContinuation<Void, Never>
        }

        private struct State {
            var isOpen = false
            var nextID: UInt64 = 0
            var arrivals = 0
            var held: [UInt64: CheckedContinuation<Void, any Error>] = [:]
            var arrivalWaiters: [ArrivalWaiter] = []
            var cancelled: Set<UInt64> = []

            mutating func newID() -> UInt64 {
                nextID += 1
                return nextID
            }

            mutating func satisfiedWaiters() -> [CheckedContinuation<Void, Never>] {
                let n = arrivals
                let ready = arrivalWaiters.filter { n >= $0.count }.map(\.continuation)
                arrivalWaiters.removeAll { n >= $0.count }
                return ready
            }
        }

        private let state = Mutex(State())

        public init() {}

        /// Requests that have reached the gate so far, held or let through.
        public var arrivals: Int { state.withLock { $0.arrivals } }

        /// Requests waiting at the gate now.
        public var heldCount: Int { state.withLock { $0.held.count } }

        /// Lets the held requests and every later one through.
        public func open() {
            let held = state.withLock { s in
                s.isOpen = true
                let c = Array(s.held.values)
                s.held = [:]
                return c
            }
            for c in held { c.resume() }
        }

        /// Suspends until `count` requests have reached the gate, or the calling task is cancelled.
        public func waitForArrivals(_ count: Int = 1) async {
            let id = state.withLock { $0.newID() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now: Bool = state.withLock { s in
                        if s.arrivals >= count || s.cancelled.remove(id) != nil { return true }
                        s.arrivalWaiters.append(ArrivalWaiter(id: id, count: count, continuation: c))
                        return false
                    }
                    if now { c.resume() }
                }
            } onCancel: {
                let c: CheckedContinuation<Void, Never>? = state.withLock { s in
                    if let i = s.arrivalWaiters.firstIndex(where: { $0.id == id }) {
                        return s.arrivalWaiters.remove(at: i).continuation
                    }
                    s.cancelled.insert(id)
                    return nil
                }
                c?.resume()
            }
        }

        /// Returns once the gate is open; throws `.cancelled` if the task is cancelled first.
        func pass() async throws(TransportFailure) {
            let id = state.withLock { $0.newID() }
            do {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                        let (verdict, ready): (Bool?, [CheckedContinuation<Void, Never>]) = state.withLock { s in
                            s.arrivals += 1
                            let ready = s.satisfiedWaiters()
                            if s.cancelled.remove(id) != nil { return (false, ready) }
                            if s.isOpen { return (true, ready) }
                            s.held[id] = c
                            return (nil, ready)
                        }
                        for w in ready { w.resume() }
                        switch verdict {
                        case .some(true): c.resume()
                        case .some(false): c.resume(throwing: CancellationError())
                        case nil: break
                        }
                    }
                } onCancel: {
                    let c: CheckedContinuation<Void, any Error>? = state.withLock { s in
                        if let c = s.held.removeValue(forKey: id) { return c }
                        s.cancelled.insert(id)
                        return nil
                    }
                    c?.resume(throwing: CancellationError())
                }
            } catch {
                throw TransportFailure.cancelled
            }
        }
    }

    // MARK: - state

    fileprivate struct Slot {
        var tokens: [Int] = []
        var hasTask = false
        var idTask = -1
        var lastUsed = 0
        var restoredPending = false
    }

    fileprivate struct FaultRule {
        var match: Match
        var fault: Fault
        var remaining: Int?
    }

    fileprivate struct AnswerRule {
        var match: Match
        var answer: @Sendable (HTTPRequest) -> HTTPResponse
    }

    fileprivate struct RequestWaiter {
        var id: UInt64
        var count: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    fileprivate struct State {
        var backend: Backend
        var slots: [Slot]
        var files: [String: [UInt8]] = [:]
        var faults: [FaultRule] = []
        var answers: [AnswerRule] = []
        var requests: [HTTPRequest] = []
        var requestWaiters: [RequestWaiter] = []
        var cancelledWaiters: Set<UInt64> = []
        var nextWaiterID: UInt64 = 0
        var nextTask = 0
        var nextUse = 0

        init(backend: Backend) {
            self.backend = backend
            slots = Array(repeating: Slot(), count: backend.slots)
        }

        /// The newest fault for `request` that has uses left, counted down.
        mutating func takeFault(for request: HTTPRequest) -> Fault? {
            guard let i = faults.lastIndex(where: { $0.match.matches(request) }) else { return nil }
            let fault = faults[i].fault
            if let left = faults[i].remaining {
                if left <= 1 { faults.remove(at: i) } else { faults[i].remaining = left - 1 }
            }
            return fault
        }
    }

    private let state: Mutex<State>

    public init(_ backend: Backend = Backend()) {
        state = Mutex(State(backend: backend))
    }

    // MARK: - scripting

    /// Answers requests matching `match` with `answer` instead of the emulated server.
    public func respond(to match: Match, with answer: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        state.withLock { $0.answers.append(AnswerRule(match: match, answer: answer)) }
    }

    /// Answers requests matching `match` with `status` and the JSON text `json`.
    public func respond(to match: Match, status: Int = 200, json: String) {
        let response = HTTPResponse(status: status, body: Array(json.utf8))
        respond(to: match) { _ in response }
    }

    /// Applies `fault` to the next `times` requests matching `match` (nil: to all of them).
    public func inject(_ fault: Fault, at match: Match, times: Int? = nil) {
        precondition(times.map { $0 > 0 } ?? true, "times must be positive")
        state.withLock { $0.faults.append(FaultRule(match: match, fault: fault, remaining: times)) }
    }

    /// Removes every injected fault.
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    /// Removes every answer set with ``respond(to:with:)``.
    public func clearAnswers() { state.withLock { $0.answers.removeAll() } }

    /// Changes what the server reports; a changed slot count starts with empty slots.
    public func update(_ change: (inout Backend) -> Void) {
        state.withLock { s in
            change(&s.backend)
            precondition(s.backend.slots >= 1, "a server has at least one slot")
            if s.slots.count != s.backend.slots { s.slots = Array(repeating: Slot(), count: s.backend.slots) }
        }
    }

    /// Empties every slot, as a server restart does (saved files stay).
    public func restartServer() {
        state.withLock { s in s.slots = Array(repeating: Slot(), count: s.backend.slots) }
    }

    // MARK: - inspection

    /// Every request received, in arrival order.
    public var requests: [HTTPRequest] { state.withLock { $0.requests } }

    /// The received requests that `match` matches, in arrival order.
    public func requests(_ match: Match) -> [HTTPRequest] { requests.filter { match.matches($0) } }

    /// Forgets the recorded requests.
    public func clearRequests() { state.withLock { $0.requests.removeAll() } }

    /// Suspends until ``requests`` holds at least `count` requests, or the calling task is cancelled.
    public func waitForRequests(_ count: Int) async {
        let id = state.withLock { s in
            s.nextWaiterID += 1
            return s.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLock { s in
                    if s.requests.count >= count || s.cancelledWaiters.remove(id) != nil { return true }
                    s.requestWaiters.append(RequestWaiter(id: id, count: count, continuation: c))
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, Never>? = state.withLock { s in
                if let i = s.requestWaiters.firstIndex(where: { $0.id == id }) {
                    return s.requestWaiters.remove(at: i).continuation
                }
                s.cancelledWaiters.insert(id)
                return nil
            }
            c?.resume()
        }
    }

    /// The tokens slot `slot` holds.
    public func tokens(inSlot slot: Int) -> [Int] { state.withLock { $0.slots[slot].tokens } }

    /// The names of files saved in memory (no ``Backend/slotSaveDirectory``), sorted.
    public var savedFileNames: [String] { state.withLock { $0.files.keys.sorted() } }

    /// A request's body parsed as a JSON object, if it is one.
    public static func jsonBody(_ request: HTTPRequest) -> [String: Any]? {
        guard let b = request.body else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any]
    }

    /// `path` without its query.
    public static func route(of path: String) -> String {
        path.firstIndex(of: "?").map { String(path[..<$0]) } ?? path
    }

    // MARK: - tokenizer

    public static let bosToken = 2
    static let firstWordToken = 1000
    static let wordTokenSpan: UInt64 = 200_000

    /// A leading `<bos>` (with `addSpecial`, or when the text starts with a literal `<bos>`)
    /// and then one token per whitespace-separated word, its id a hash of the word.
    public static func tokenize(_ text: String, addSpecial: Bool = true) -> [Int] {
        var rest = Substring(text)
        var out: [Int] = []
        if rest.hasPrefix("<bos>") {
            rest = rest.dropFirst(5)
            out.append(bosToken)
        } else if addSpecial {
            out.append(bosToken)
        }
        for word in rest.split(whereSeparator: \.isWhitespace) {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
            for b in word.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            out.append(firstWordToken + Int(h % wordTokenSpan))
        }
        return out
    }

    // MARK: - HTTPTransport

    public func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
        let cancelled = Task.isCancelled
        let (fault, waiters) = state.withLock { s in
            s.requests.append(request)
            let n = s.requests.count
            let ready = s.requestWaiters.filter { n >= $0.count }.map(\.continuation)
            s.requestWaiters.removeAll { n >= $0.count }
            return (cancelled ? nil : s.takeFault(for: request), ready)
        }
        for w in waiters { w.resume() }
        if cancelled { throw .cancelled }
        switch fault {
        case .connectFailure(let m)?: throw .connect(m)
        case .timeout?: throw .timeout
        case .brokenConnection(let m)?: throw .broken(m)
        case .status(let code, let message)?: return Self.error(code, message)
        case .malformedBody(let body)?: return HTTPResponse(status: 200, body: Array(body.utf8))
        case .hold(let gate)?: try await gate.pass()
        case .delay(let d)?:
            do { try await Task.sleep(for: d) } catch { throw .cancelled }
        case nil: break
        }
        let answer = state.withLock { s in s.answers.last { $0.match.matches(request) }?.answer }
        if let answer { return answer(request) }
        return state.withLock { $0.serve(request) }
    }

    // MARK: - responses

    static func json(_ object: Any, status: Int = 200) -> HTTPResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(status: status, body: Array(data))
    }

    static func errorType(_ status: Int) -> String {
        switch status {
        case 400: "invalid_request_error"
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 501: "not_supported_error"
        case 503: "unavailable_error"
        default: "server_error"
        }
    }

    /// llama-server's error answer.
    public static func error(_ status: Int, _ message: String, type: String? = nil,
                             extra: [String: Int] = [:]) -> HTTPResponse {
        var e: [String: Any] = ["code": status, "message": message, "type": type ?? errorType(status)]
        for (k, v) in extra { e[k] = v }
        return json(["error": e], status: status)
    }

    static let restoreFailed = "Unable to restore slot: No available space in KV cache or invalid slot save file"
    static let restoreDoesNotFit = "Unable to restore slot: Restored prompt does not fit in the slot context"
    static let restoreBadTokens = "Unable to restore slot: Invalid tokens in slot save file"
    static let saveFailed = "Unable to save slot"
    static let fileMagic = "kvwarm-scripted-kv 1"

    /// A JSON number as `Int`, as ``LlamaClient`` reads it.
    static func int(_ v: Any?) -> Int? {
        switch v {
        case let i as Int: i
        case let d as Double: Int(exactly: d)
        case let n as NSNumber: n.intValue
        default: nil
        }
    }
}

// MARK: - the emulated server

extension ScriptedTransport.State {
    typealias T = ScriptedTransport

    mutating func serve(_ request: HTTPRequest) -> HTTPResponse {
        let route = T.route(of: request.path)
        let query = Self.query(of: request.path)
        switch (request.method, route) {
        case ("GET", "/health"), ("GET", "/v1/health"): return T.json(["status": "ok"])
        case ("GET", "/props"): return T.json(props())
        case ("GET", "/v1/models"), ("GET", "/models"): return T.json(models())
        case ("GET", "/slots"): return T.json(slots.enumerated().map { slotJSON($0.offset, $0.element) })
        case ("POST", "/apply-template"):
            guard let b = T.jsonBody(request) else { return T.error(400, "Invalid JSON body") }
            guard let messages = b["messages"] as? [[String: Any]] else {
                return T.error(400, "'messages' is required and must be an array")
            }
            return T.json(["prompt": Self.applyTemplate(messages, generationPrompt: (b["add_generation_prompt"] as? Bool) ?? true)])
        case ("POST", "/tokenize"):
            guard let b = T.jsonBody(request) else { return T.error(400, "Invalid JSON body") }
            guard let content = b["content"] as? String else { return T.error(400, "\"content\" is required") }
            return T.json(["tokens": T.tokenize(content, addSpecial: (b["add_special"] as? Bool) ?? false)])
        case ("POST", "/completion"), ("POST", "/completions"): return completion(request)
        case ("POST", _) where route.hasPrefix("/slots/"):
            return slotAction(String(route.dropFirst("/slots/".count)), action: query["action"] ?? "", request)
        default: return T.error(404, "File Not Found")
        }
    }

    static func query(of path: String) -> [String: String] {
        guard let q = path.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in path[path.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            out[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        return out
    }

    func props() -> [String: Any] {
        [
            "default_generation_settings": [
                "id": 0, "id_task": -1, "n_ctx": backend.nCtx, "speculative": false, "is_processing": false,
                "params": ["n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95,
                           "cache_prompt": true, "n_keep": 0] as [String: Any],
            ] as [String: Any],
            "total_slots": backend.slots,
            "model_alias": backend.modelPath,
            "model_path": backend.modelPath,
            "modalities": ["vision": false, "video": false, "audio": false],
            "endpoint_slots": true, "endpoint_props": false, "endpoint_metrics": false,
            "chat_template": backend.chatTemplate,
            "bos_token": "<bos>", "eos_token": "<eos>",
            "build_info": backend.buildInfo,
            "is_sleeping": false,
        ]
    }

    func models() -> [String: Any] {
        let meta: [String: Any] = [
            "vocab_type": 1, "n_vocab": backend.nVocab, "n_ctx": backend.nCtx, "n_ctx_train": backend.nCtxTrain,
            "n_embd": backend.nEmbd, "n_params": backend.nParams, "size": backend.modelSize, "ftype": "Q4_K - Medium",
        ]
        return ["object": "list", "data": [[
            "id": backend.modelPath, "aliases": [String](), "tags": [String](), "object": "model",
            "created": 0, "owned_by": "llamacpp", "meta": meta,
        ] as [String: Any]]]
    }

    func slotJSON(_ id: Int, _ s: ScriptedTransport.Slot) -> [String: Any] {
        var d: [String: Any] = ["id": id, "n_ctx": backend.nCtx, "speculative": false, "is_processing": false]
        if s.hasTask {
            d["id_task"] = s.idTask
            d["n_prompt_tokens"] = s.tokens.count
            d["n_prompt_tokens_processed"] = 0
            d["n_prompt_tokens_cache"] = 0
            d["params"] = ["n_predict": -1, "cache_prompt": true] as [String: Any]
        }
        return d
    }

    /// Gemma-3-like: `<bos>`, one `<start_of_turn>{role}\n{content}<end_of_turn>\n` per message
    /// (system text joined to the next user message), `<start_of_turn>model\n` if asked.
    static func applyTemplate(_ messages: [[String: Any]], generationPrompt: Bool) -> String {
        var out = "<bos>"
        var pendingSystem: String?
        for m in messages {
            var role = m["role"] as? String ?? "user"
            var text = (m["content"] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            if role == "system" || role == "developer" {
                pendingSystem = pendingSystem.map { $0 + "\n\n" + text } ?? text
                continue
            }
            if role == "assistant" { role = "model" }
            if role == "user", let sys = pendingSystem {
                text = sys + "\n\n" + text
                pendingSystem = nil
            }
            out += "<start_of_turn>\(role)\n\(text)<end_of_turn>\n"
        }
        if let sys = pendingSystem { out += "<start_of_turn>user\n\(sys)<end_of_turn>\n" }
        if generationPrompt { out += "<start_of_turn>model\n" }
        return out
    }

    static func commonPrefix(_ a: [Int], _ b: [Int]) -> Int {
        var n = 0
        while n < a.count, n < b.count, a[n] == b[n] { n += 1 }
        return n
    }

    mutating func completion(_ request: HTTPRequest) -> HTTPResponse {
        guard let b = T.jsonBody(request) else { return T.error(400, "Invalid JSON body") }
        let tokens: [Int]
        switch b["prompt"] {
        case let p as String: tokens = T.tokenize(p, addSpecial: true)
        case let p as [Int]: tokens = p
        default: return T.error(400, "\"prompt\" is required")
        }
        let n = tokens.count
        guard n > 0 else { return T.error(400, "empty prompt") }
        guard n < backend.nCtx else {
            return T.error(400, "the request exceeds the available context size, try increasing it",
                           type: "exceed_context_size_error", extra: ["n_prompt_tokens": n, "n_ctx": backend.nCtx])
        }
        let nPredict = T.int(b["n_predict"]) ?? -1
        let nGen = nPredict <= 1 ? 1 : min(nPredict, 8)
        let cachePrompt = (b["cache_prompt"] as? Bool) ?? true
        let requested = T.int(b["id_slot"]) ?? -1

        let id: Int
        if requested >= 0 {
            id = requested % slots.count
        } else {
            // most similar slot above 10 % of the prompt, else the least recently used
            let sims = slots.indices.map { (i: $0, common: Self.commonPrefix(slots[$0].tokens, tokens)) }
            if let best = sims.max(by: { $0.common < $1.common }), Double(best.common) / Double(n) > 0.1 {
                id = best.i
            } else {
                id = slots.indices.min { slots[$0].lastUsed < slots[$1].lastUsed } ?? 0
            }
        }
        var cacheN = cachePrompt ? min(Self.commonPrefix(slots[id].tokens, tokens), n - 1) : 0
        if slots[id].restoredPending, backend.forgetsRestoredKV { cacheN = 0 }
        let promptN = n - cacheN
        nextTask += 1
        nextUse += 1
        slots[id].restoredPending = false
        slots[id].hasTask = true
        slots[id].idTask = nextTask
        slots[id].lastUsed = nextUse
        slots[id].tokens = tokens + Array(repeating: T.tokenize("x", addSpecial: false)[0], count: nGen - 1)

        let promptMS = max(Double(promptN) * backend.promptMSPerToken, 0.001)
        let predictedMS = 0.5 * Double(nGen)
        let timings: [String: Any] = [
            "cache_n": cacheN, "prompt_n": promptN, "prompt_ms": promptMS,
            "prompt_per_token_ms": promptMS / Double(max(promptN, 1)),
            "prompt_per_second": 1000 * Double(promptN) / promptMS,
            "predicted_n": nGen, "predicted_ms": predictedMS, "predicted_per_token_ms": predictedMS / Double(nGen),
            "predicted_per_second": 1000 * Double(nGen) / predictedMS,
        ]
        return T.json([
            "index": 0, "content": String(repeating: "x", count: nGen), "tokens": [Int](), "id_slot": id,
            "stop": true, "model": backend.modelPath, "tokens_predicted": nGen, "tokens_evaluated": n,
            "generation_settings": ["n_predict": nPredict, "cache_prompt": cachePrompt] as [String: Any],
            "prompt": b["prompt"] as? String ?? "", "has_new_line": false, "truncated": false,
            "stop_type": "limit", "stopping_word": "", "tokens_cached": slots[id].tokens.count, "timings": timings,
        ])
    }

    mutating func slotAction(_ idText: String, action: String, _ request: HTTPRequest) -> HTTPResponse {
        guard let sid = Int(idText), sid >= 0 else { return T.error(400, "Invalid slot ID") }
        guard ["save", "restore", "erase"].contains(action) else { return T.error(400, "Invalid action") }
        let id = sid % slots.count
        if action == "erase" {
            let n = slots[id].tokens.count
            slots[id].tokens = []
            slots[id].restoredPending = false
            return T.json(["id_slot": id, "n_erased": n])
        }
        guard let b = T.jsonBody(request) else { return T.error(400, "Invalid JSON body") }
        guard let value = b["filename"] else {
            return T.error(400, "[json.exception.out_of_range.403] key 'filename' not found")
        }
        guard let name = value as? String else {
            return T.error(400, "[json.exception.type_error.302] type must be string")
        }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            return T.error(400, "Invalid filename")
        }
        if action == "save" {
            let data = Self.encode(slots[id].tokens)
            if let dir = backend.slotSaveDirectory {
                guard FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(data)) else {
                    return T.error(500, T.saveFailed)
                }
            } else {
                files[name] = data
            }
            return T.json(["id_slot": id, "filename": name, "n_saved": slots[id].tokens.count,
                           "n_written": data.count, "timings": ["save_ms": 0.1]])
        }
        let data: [UInt8]?
        if let dir = backend.slotSaveDirectory {
            data = FileManager.default.contents(atPath: dir + "/" + name).map(Array.init)
        } else {
            data = files[name]
        }
        guard let data else { return clearAndRefuse(id, T.restoreFailed) }
        guard let tokens = Self.decode(data) else { return clearAndRefuse(id, T.restoreBadTokens) }
        guard tokens.count <= backend.nCtx else { return clearAndRefuse(id, T.restoreDoesNotFit) }
        slots[id].tokens = tokens
        slots[id].restoredPending = true
        return T.json(["id_slot": id, "filename": name, "n_restored": tokens.count, "n_read": data.count,
                       "timings": ["restore_ms": 0.1]])
    }

    mutating func clearAndRefuse(_ id: Int, _ message: String) -> HTTPResponse {
        slots[id].tokens = []
        slots[id].restoredPending = false
        return T.error(400, message)
    }

    /// A slot file: a header line, then the token ids separated by spaces.
    static func encode(_ tokens: [Int]) -> [UInt8] {
        Array((T.fileMagic + "\n" + tokens.map(String.init).joined(separator: " ")).utf8)
    }

    static func decode(_ data: [UInt8]) -> [Int]? {
        let text = String(decoding: data, as: UTF8.self)
        let header = T.fileMagic + "\n"
        guard text.hasPrefix(header) else { return nil }
        var out: [Int] = []
        for field in text.dropFirst(header.count).split(separator: " ") {
            guard let t = Int(field) else { return nil }
            out.append(t)
        }
        return out
    }
}

