import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// The warm stage above the HTTP layer, run in-process against ``ScriptedTransport``.
@Suite(.timeLimit(.minutes(1))) struct ScriptedTransportTests {
    static let name = SlotFileNaming.fileName(template: "code", digest: String(repeating: "ab", count: 32))

    func makeClient(_ t: ScriptedTransport) -> LlamaClient { LlamaClient(transport: t, timeout: .seconds(5)) }

    func save(_ report: WarmReport, _ persister: SlotPersister) async throws -> SlotPersister.Saved {
        try await persister.save(slot: report.slot, fileName: Self.name, expectedTokens: report.promptTokens,
                                 redo: { () async throws(BackendError) -> Int in report.slot })
    }

    // MARK: - emulated server

    @Test func prefillThenRestoreGivesACachedProbe() async throws {
        let t = ScriptedTransport()
        let warmer = TemplateWarmer(client: makeClient(t), scheduler: SlotScheduler())
        let tokens = ScriptedTransport.tokenize(contractPrompt).count
        let warm = try await warmer.prefill(contractPrompt, template: "t")
        #expect(warm.mode == .prefill)
        #expect(warm.promptTokens == tokens)
        #expect(warm.cachedTokens == 0)
        #expect(warm.processedTokens == tokens)

        let saved = try await save(warm, SlotPersister(client: warmer.client, slotSaveDir: nil))
        #expect(saved.tokens == tokens)
        #expect(saved.bytes > 0)
        #expect(t.savedFileNames == [Self.name])

        t.restartServer()
        #expect(t.tokens(inSlot: warm.slot).isEmpty)
        let r = try await warmer.restore(contractPrompt, fileName: Self.name, template: "t")
        #expect(r.mode == .restore)
        #expect(r.fallback == nil)
        #expect(r.promptTokens == tokens)
        #expect(Double(r.cachedTokens) >= 0.9 * Double(tokens))
        #expect(r.cachedTokens == tokens - 1, "the server evaluates the last prompt token again")
        let restores = t.requests(.post("/slots/\(r.slot)?action=restore"))
        #expect(restores.count == 1)
        #expect(restores.first.flatMap(ScriptedTransport.jsonBody)?["filename"] as? String == Self.name)
    }

    @Test func savesGoToTheSlotDirectoryAndThePartialIsRenamed() async throws {
        let dir = try TemporaryDirectory("scripted")
        defer { dir.remove() }
        let t = ScriptedTransport(.init(slotSaveDirectory: dir.path))
        let warmer = TemplateWarmer(client: makeClient(t), scheduler: SlotScheduler())
        let warm = try await warmer.prefill(contractPrompt, template: "t")
        let saved = try await save(warm, SlotPersister(client: warmer.client, slotSaveDir: dir.path))
        #expect(saved.tokens == warm.promptTokens)
        #expect(FileManager.default.fileExists(atPath: dir.file(Self.name)))
        #expect(!FileManager.default.fileExists(atPath: dir.file(SlotFileNaming.partialName(of: Self.name))))
        #expect(t.requests(.post("/slots/\(warm.slot)?action=save")).count == 1)
        #expect(t.savedFileNames.isEmpty, "nothing is kept in memory with a directory")

        t.restartServer()
        let r = try await warmer.restore(contractPrompt, fileName: Self.name, template: "t")
        #expect(r.mode == .restore)
        #expect(r.cachedTokens == warm.promptTokens - 1)
    }

    @Test func aRepeatedPromptOnTheSameSlotIsCachedButItsLastToken() async throws {
        let t = ScriptedTransport()
        let c = makeClient(t)
        let first = try await c.complete(prompt: contractPrompt, slot: 1)
        let second = try await c.complete(prompt: contractPrompt, slot: 1)
        #expect(first.slot == 1)
        #expect(first.cachedTokens == 0)
        #expect(second.cachedTokens == second.promptTokens - 1)
        #expect(second.processedTokens == 1)
        #expect(t.tokens(inSlot: 1) == ScriptedTransport.tokenize(contractPrompt))
        let longer = try await c.complete(prompt: contractPrompt + " And be brief.", slot: 1)
        #expect(longer.cachedTokens == first.promptTokens)
        let body = ScriptedTransport.jsonBody(t.requests(.post("/completion"))[0])
        #expect(body?["id_slot"] as? Int == 1)
        #expect(body?["n_predict"] as? Int == 1)
        #expect(body?["cache_prompt"] as? Bool == true)
    }

    @Test func aMissingFileIsRefusedAndTheProbePrefills() async throws {
        let t = ScriptedTransport()
        let warmer = TemplateWarmer(client: makeClient(t), scheduler: SlotScheduler())
        let r = try await warmer.restore(contractPrompt, fileName: Self.name, template: "t")
        #expect(r.mode == .prefill)
        guard case .refused(let why) = r.fallback else {
            Issue.record("expected a refused restore, got \(String(describing: r.fallback))")
            return
        }
        #expect(why.contains("Unable to restore slot"))
        #expect(r.cachedTokens == 0)
        #expect(t.tokens(inSlot: r.slot) == ScriptedTransport.tokenize(contractPrompt))
    }

    @Test func aRestoreThatDoesNotTakeIsIneffective() async throws {
        let t = ScriptedTransport(.init(forgetsRestoredKV: true))
        let warmer = TemplateWarmer(client: makeClient(t), scheduler: SlotScheduler())
        let warm = try await warmer.prefill(contractPrompt, template: "t")
        _ = try await save(warm, SlotPersister(client: warmer.client, slotSaveDir: nil))
        let r = try await warmer.restore(contractPrompt, fileName: Self.name, template: "t")
        #expect(r.mode == .prefill)
        #expect(r.fallback == .ineffective(cached: 0, of: warm.promptTokens))
    }

    @Test func eraseEmptiesTheSlot() async throws {
        let t = ScriptedTransport()
        _ = try await makeClient(t).complete(prompt: contractPrompt, slot: 2)
        let r = try await t.send(HTTPRequest(method: "POST", path: "/slots/2?action=erase", body: nil, timeout: .seconds(1)))
        #expect(r.status == 200)
        let o = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        #expect(o?["n_erased"] as? Int == ScriptedTransport.tokenize(contractPrompt).count)
        #expect(t.tokens(inSlot: 2).isEmpty)
    }

    @Test func fingerprintComesFromPropsAndModels() async throws {
        let t = ScriptedTransport(.init(slots: 2, nCtx: 8192))
        let f = try await BackendFingerprint.read(from: makeClient(t), kvTag: "swa-full")
        #expect(f.totalSlots == 2)
        #expect(f.nCtx == 8192)
        #expect(f.modelPath == "/models/fake-gemma-3-4b-it-Q4_K_M.gguf")
        #expect(f.build == "b0-scripted")
        #expect(f.nVocab == 262_144)
        #expect(f.nParams > 0 && f.modelSize > 0 && f.nEmbd > 0 && f.nCtxTrain > 0)
        #expect(f.kvTag == "swa-full")

        t.update { $0.modelPath = "/models/other.gguf"; $0.buildInfo = "b1" }
        let g = try await BackendFingerprint.read(from: makeClient(t), kvTag: "swa-full")
        #expect(g.differences(from: f) == ["model_path", "build_info"])
        #expect(g.digest != f.digest)
    }

    @Test func slotsListShowsEachSlotAndItsPrompt() async throws {
        let t = ScriptedTransport(.init(slots: 3, nCtx: 2048))
        let c = makeClient(t)
        _ = try await c.complete(prompt: contractPrompt, slot: 1)
        let slots = try await c.slots()
        #expect(slots.map(\.id) == [0, 1, 2])
        #expect(slots.allSatisfy { $0.nCtx == 2048 && !$0.isProcessing })
        #expect(slots[1].promptTokens == ScriptedTransport.tokenize(contractPrompt).count)
        #expect(slots[0].promptTokens == nil)
        #expect(slots[0].idTask == nil)
    }

    @Test func chatPrefixesAreCutAtTheMessage() async throws {
        let t = ScriptedTransport()
        let builder = WarmPromptBuilder(client: makeClient(t))
        let rendered = RenderedTemplate(beforeMessage: "Review this diff:\n", afterMessage: "\nThanks.", hasPlaceholder: true)
        let user = try await builder.prefix(rendered, spec: TemplateSpec(name: "t", path: "/t", endpoint: .chat, role: .user))
        #expect(user == "<bos><start_of_turn>user\nReview this diff:\n")
        let system = try await builder.prefix(rendered, spec: TemplateSpec(name: "t", path: "/t", endpoint: .chat, role: .system))
        #expect(system == "<bos><start_of_turn>user\nReview this diff:\n\nThanks.\n\n")
        let messages = t.requests(.post("/apply-template")).compactMap { ScriptedTransport.jsonBody($0)?["messages"] as? [[String: Any]] }
        #expect(messages.map { $0.compactMap { $0["role"] as? String } } == [["user"], ["system", "user"]])
        #expect(try await makeClient(t).tokenize(user) == ScriptedTransport.tokenize(user))
        #expect(ScriptedTransport.tokenize(user).first == ScriptedTransport.bosToken)
        #expect(ScriptedTransport.tokenize(user).filter { $0 == ScriptedTransport.bosToken }.count == 1,
                "a literal <bos> is not doubled")
    }

    @Test func anOverriddenAnswerReplacesTheServer() async throws {
        let t = ScriptedTransport()
        t.respond(to: .get("/slots"), status: 501,
                  json: #"{"error":{"code":501,"message":"slots endpoint disabled","type":"not_supported_error"}}"#)
        let warmer = TemplateWarmer(client: makeClient(t), scheduler: SlotScheduler())
        #expect(try await warmer.idleSlot(for: "t") == -1, "without /slots the server chooses")
        t.clearAnswers()
        #expect(try await warmer.idleSlot(for: "t") >= 0)
    }

    // MARK: - faults

    enum FaultCase: String, CaseIterable, Sendable {
        case refused, timeout, broken, unauthorized, internalError, loading, busy, unsupported, malformed

        var fault: ScriptedTransport.Fault {
            switch self {
            case .refused: .refused
            case .timeout: .timeout
            case .broken: .brokenConnection("Recv failure: Connection reset by peer")
            case .unauthorized: .unauthorized
            case .internalError: .internalError
            case .loading: .loadingModel
            case .busy: .status(503, message: "no slot available")
            case .unsupported: .status(501, message: "This server does not support slots action")
            case .malformed: .notJSON
            }
        }

        var expected: BackendError {
            switch self {
            case .refused: .unreachable("Failed to connect to 127.0.0.1 port 8080: Connection refused")
            case .timeout: .timeout
            case .broken: .broken("Recv failure: Connection reset by peer")
            case .unauthorized: .unauthorized
            case .internalError: .http(status: 500, message: "Internal Server Error")
            case .loading: .loading
            case .busy: .http(status: 503, message: "no slot available")
            case .unsupported: .unsupported("This server does not support slots action")
            case .malformed: .malformed("response is not a JSON object")
            }
        }
    }

    @Test(arguments: FaultCase.allCases) func eachFaultIsItsBackendError(_ c: FaultCase) async throws {
        let t = ScriptedTransport()
        t.inject(c.fault, at: .get("/props"))
        let client = makeClient(t)
        #expect(await backendError { () async throws(BackendError) in try await client.props() } == c.expected)
        #expect(await backendError { () async throws(BackendError) in try await client.props() } == c.expected,
                "without `times` the fault stays")
        #expect(try await client.slots().count == 4, "other routes are not faulted")
        #expect(t.requests(.get("/props")).count == 2)
    }

    @Test func faultsReachTheWarmerAndThePersisterAsBackendErrors() async throws {
        let t = ScriptedTransport()
        let warmer = TemplateWarmer(client: makeClient(t), scheduler: SlotScheduler())
        t.inject(.loadingModel, at: .post("/completion"), times: 1)
        await #expect(throws: BackendError.loading) { try await warmer.prefill(contractPrompt, template: "t") }
        let warm = try await warmer.prefill(contractPrompt, template: "t")

        t.inject(.status(500, message: "Unable to save slot"), at: .post("/slots/\(warm.slot)?action=save"))
        let persister = SlotPersister(client: warmer.client, slotSaveDir: nil)
        await #expect(throws: SlotPersister.Failure.backend(.http(status: 500, message: "Unable to save slot"))) {
            try await save(warm, persister)
        }
        #expect(t.savedFileNames.isEmpty)
        let other = warm.slot == 0 ? 1 : 0
        _ = try await makeClient(t).complete(prompt: contractPrompt, slot: other)
        let saved = try await persister.save(slot: other, fileName: Self.name, expectedTokens: warm.promptTokens,
                                             redo: { () async throws(BackendError) -> Int in other })
        #expect(saved.tokens == warm.promptTokens, "the query-qualified fault is for slot \(warm.slot) only")

        t.inject(.brokenConnection("reset"), at: .post("/slots/*"))
        await #expect(throws: BackendError.broken("reset")) {
            try await warmer.restore(contractPrompt, fileName: Self.name, template: "t")
        }
    }

    @Test func failTheNextNTimesThenSucceed() async throws {
        let t = ScriptedTransport()
        let client = makeClient(t)
        t.inject(.unauthorized, at: .get("/props"), times: 2)
        #expect(await backendError { () async throws(BackendError) in try await client.props() } == .unauthorized)
        #expect(await backendError { () async throws(BackendError) in try await client.props() } == .unauthorized)
        #expect(try await client.props()["total_slots"] as? Int == 4)
        #expect(t.requests(.get("/props")).count == 3)
    }

    @Test func theNewestFaultWins() async throws {
        let t = ScriptedTransport()
        let client = makeClient(t)
        t.inject(.internalError, at: .any)
        t.inject(.timeout, at: .get("/health"), times: 1)
        #expect(await client.health() == .timeout)
        #expect(await client.health() == .http(status: 500, message: "Internal Server Error"))
        t.clearFaults()
        #expect(await client.health() == nil)
    }

    @Test func aHeldRequestAnswersWhenTheGateOpens() async throws {
        let t = ScriptedTransport()
        let gate = ScriptedTransport.Gate()
        t.inject(.hold(gate), at: .post("/completion"), times: 1)
        let client = makeClient(t)
        let task = Task { () async throws(BackendError) -> LlamaClient.CompletionResult in
            try await client.complete(prompt: contractPrompt, slot: 0)
        }
        await gate.waitForArrivals(1)
        #expect(gate.heldCount == 1)
        #expect(t.tokens(inSlot: 0).isEmpty, "held before the server saw it")
        gate.open()
        let r = try await task.value
        #expect(r.promptTokens == ScriptedTransport.tokenize(contractPrompt).count)
        #expect(gate.heldCount == 0)
        #expect(gate.arrivals == 1)
    }

    @Test func cancellingAHeldRequestIsCancelled() async throws {
        let t = ScriptedTransport()
        let gate = ScriptedTransport.Gate()
        t.inject(.hold(gate), at: .get("/props"))
        let client = makeClient(t)
        let task = Task { await backendError { () async throws(BackendError) in try await client.props() } }
        await gate.waitForArrivals(1)
        task.cancel()
        #expect(await task.value == .cancelled)
        #expect(gate.heldCount == 0)
    }

    @Test func cancellingADelayedRequestIsCancelled() async throws {
        let t = ScriptedTransport()
        t.inject(.delay(.seconds(3600)), at: .get("/props"))
        let client = makeClient(t)
        let task = Task { await backendError { () async throws(BackendError) in try await client.props() } }
        await t.waitForRequests(1)
        task.cancel()
        #expect(await task.value == .cancelled)
    }

    @Test func aCancelledTaskDoesNotUseUpAFault() async throws {
        let t = ScriptedTransport()
        t.inject(.unauthorized, at: .get("/props"), times: 1)
        let client = makeClient(t)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await backendError { () async throws(BackendError) in try await client.props() }
        }
        #expect(await task.value == .cancelled)
        #expect(await backendError { () async throws(BackendError) in try await client.props() } == .unauthorized)
        #expect(t.requests(.get("/props")).count == 2)
    }

    @Test func aShortDelayThenAnswers() async throws {
        let t = ScriptedTransport()
        t.inject(.delay(.milliseconds(1)), at: .get("/health"), times: 1)
        #expect(await makeClient(t).health() == nil)
        #expect(t.requests.map(\.path) == ["/health"])
    }
}
