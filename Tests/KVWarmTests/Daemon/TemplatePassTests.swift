import Foundation
import Logging
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// A temp directory with `tpl/` (templates and includes), `slots/` (the server's --slot-save-path,
/// written by ``ScriptedTransport``) and `state/`, and a config loaded from it.
struct PassSandbox {
    let dir: TemporaryDirectory
    var root: String { dir.path }
    var slots: String { dir.file("slots") }
    var stateDir: String { dir.file("state") }

    /// Eighty-odd words, so no pass reports `fewTokens`.
    static let rules = (1...80).map { "rule\($0)" }.joined(separator: " ")

    init() throws {
        dir = try TemporaryDirectory("kvpass")
        try FileManager.default.createDirectory(atPath: dir.file("slots"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        try dir.write("tpl/rules.txt", Self.rules)
    }

    func path(_ template: String) -> String { dir.file("tpl/\(template).txt") }
    var includePath: String { dir.file("tpl/rules.txt") }

    /// Writes a template that includes `rules.txt` (or `include`) before the message.
    @discardableResult
    func writeTemplate(_ name: String, include: String = "rules.txt", extra: String = "") throws -> String {
        try dir.write("tpl/\(name).txt", "Review the change for \(name) \(extra) following <{\(include)}> now: <{message}> thanks")
    }

    /// Loads a config naming `templates` (written under `tpl/`), as `config-<n>.json`.
    func config(_ templates: [String], file: String = "config.json") throws -> KVWarmConfig {
        let entries = templates.map { "\"\($0)\": \"\(path($0))\"" }.joined(separator: ", ")
        let text = """
        {
          "backend": {"url": "http://127.0.0.1:9", "slot_save_dir": "\(slots)", "timeout_seconds": 5},
          "state_dir": "\(stateDir)",
          "templates": {\(entries)},
          "include_roots": ["\(dir.file("tpl"))"]
        }
        """
        try dir.write(file, text)
        return try ConfigLoader(environment: [:]).load(path: dir.file(file))
    }

    func remove() { dir.remove() }
}

/// What kind of event, for comparing the order of events whose figures vary (durations).
func kind(_ e: StageEvent) -> String {
    switch e {
    case .templateInvalid: "templateInvalid"
    case .hashCompared: "hashCompared"
    case .sentinelLost: "sentinelLost"
    case .renderRejected: "renderRejected"
    case .samePrefix: "samePrefix"
    case .rendered: "rendered"
    case .restoreIneffective: "restoreIneffective"
    case .warmed: "warmed"
    case .fewTokens: "fewTokens"
    case .persisted: "persisted"
    case .persistFailed: "persistFailed"
    case .backendFailed: "backendFailed"
    }
}

let quietLogger = Logger(label: "kvwarm.test.daemon") { _ in SwiftLogNoOpLogHandler() }

/// ``TemplatePass`` end to end through ``ScriptedTransport``: what it returns, in what order it
/// emits its stage events, and what it leaves in the slot directory.
@Suite(.timeLimit(.minutes(1))) struct TemplatePassTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    struct Env {
        let box: PassSandbox
        let t: ScriptedTransport
        let parts: PipelineParts
        let spec: TemplateSpec
        var pass: TemplatePass

        init(backend: ScriptedTransport.Backend = .init(), template: String = "code",
             write: Bool = true) throws {
            box = try PassSandbox()
            if write { try box.writeTemplate(template) }
            var b = backend
            b.slotSaveDirectory = box.slots
            t = ScriptedTransport(b)
            let config = try box.config([template])
            parts = PipelineParts(config: config, transport: t, scheduler: SlotScheduler())
            spec = config.templates[0]
            pass = TemplatePass(parts: parts)
            pass.now = { TemplatePassTests.now }
        }

        func digest() throws -> String {
            try parts.loader.load(spec).get().digest
        }

        func fingerprint() async throws -> BackendFingerprint {
            try await BackendFingerprint.read(from: parts.client, kvTag: parts.config.backend.kvTag)
        }

        /// Runs the pass and checks that `emit` saw exactly the outcome's events, in order.
        func run(previous: WarmRecord? = nil, fingerprint: BackendFingerprint? = nil,
                 ineffective: Set<String> = []) async -> PassOutcome {
            let seen = LockedBox<[StageEvent]>([])
            let outcome = await pass.run(.init(spec: spec, previous: previous, fingerprint: fingerprint,
                                               restoreIneffective: ineffective)) { e in seen.withLock { $0.append(e) } }
            #expect(seen.withLock { $0 } == outcome.events, "emit gets the same events, in order, as they happen")
            return outcome
        }

        /// The prompt text of every `/completion` so far.
        var completionPrompts: [String] {
            t.requests(.post("/completion")).compactMap { ScriptedTransport.jsonBody($0)?["prompt"] as? String }
        }
    }

    func warmedReport(_ o: PassOutcome) -> WarmReport? {
        for case .warmed(let r, _) in o.events { return r }
        return nil
    }

    // MARK: - success paths

    @Test func firstWarmPrefillsAndPersists() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let digest = try env.digest()
        let fp = try await env.fingerprint()
        env.t.clearRequests()

        let o = await env.run()
        #expect(o.result == .warmed(.prefill))
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "warmed", "persisted"])
        #expect(o.events[0] == .hashCompared(unchanged: false, digest: digest, plan: .prefill(reason: "first warm")))
        let prompt = try #require(env.completionPrompts.first)
        #expect(env.completionPrompts.count == 1)
        #expect(prompt.contains(PassSandbox.rules), "the include is in the warm prompt")
        #expect(!prompt.contains(WarmPromptBuilder.sentinel))
        #expect(o.events[1] == .rendered(promptChars: prompt.count, hasPlaceholder: true))
        let tokens = ScriptedTransport.tokenize(prompt).count
        #expect(tokens >= TemplatePass.fewTokens)

        let report = try #require(warmedReport(o))
        #expect(report.mode == .prefill)
        #expect(report.promptTokens == tokens)
        #expect(report.cachedTokens == 0)
        #expect(report.fallback == nil)
        guard case .warmed(_, let warmedDigest) = o.events[2] else { Issue.record("no warmed event"); return }
        #expect(warmedDigest == digest)

        let kvFile = SlotFileNaming.fileName(template: "code", digest: digest)
        guard case .persisted(let saved) = o.events[3] else { Issue.record("no persisted event"); return }
        #expect(saved.fileName == kvFile)
        #expect(saved.tokens == tokens)
        #expect(saved.bytes > 0)
        #expect(FileManager.default.fileExists(atPath: env.box.slots + "/" + kvFile))
        #expect(!FileManager.default.fileExists(atPath: env.box.slots + "/" + SlotFileNaming.partialName(of: kvFile)))
        let saves = env.t.requests(.post("/slots/\(report.slot)?action=save"))
        #expect(saves.count == 1)
        // the server writes the partial name and kvwarm renames it: a truncated save never has a restorable name
        #expect(saves.first.flatMap { ScriptedTransport.jsonBody($0)?["filename"] as? String }
                == SlotFileNaming.partialName(of: kvFile))

        let rec = try #require(o.record)
        #expect(rec.digest == digest)
        #expect(rec.fingerprint == fp.digest)
        #expect(rec.kvFile == kvFile)
        #expect(rec.promptTokens == tokens)
        #expect(rec.mode == .prefill)
        #expect(rec.processedTokens == tokens)
        #expect(rec.cachedTokens == 0)
        #expect(rec.saveMS == saved.durationMS)
        #expect(rec.warmedAt == Self.now)
        #expect(rec.lastError == nil && rec.lastErrorAt == nil)

        #expect(o.dependencies == [env.spec.path, env.box.includePath])
        #expect(o.fingerprintRead == fp, "no fingerprint was known, so the pass read it")
        #expect(o.restoreIneffective == nil)
    }

    @Test func unchangedContentWithAKVFileRestores() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let first = await env.run()
        let rec = try #require(first.record)
        let fp = try #require(first.fingerprintRead)
        env.t.restartServer()  // empty slots: only the restore can make the probe cached
        env.t.clearRequests()

        let o = await env.run(previous: rec, fingerprint: fp)
        #expect(o.result == .warmed(.restore))
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "warmed"], "a restore saves nothing")
        #expect(o.events[0] == .hashCompared(unchanged: true, digest: rec.digest!, plan: .restore(kvFile: rec.kvFile!)))
        let report = try #require(warmedReport(o))
        let tokens = try #require(rec.promptTokens)
        #expect(report.mode == .restore)
        #expect(report.fallback == nil)
        #expect(Double(report.cachedTokens) >= 0.9 * Double(tokens))
        #expect(report.cachedTokens == tokens - 1)

        let restores = env.t.requests(.post("/slots/\(report.slot)?action=restore"))
        #expect(restores.count == 1)
        #expect(restores.first.flatMap(ScriptedTransport.jsonBody)?["filename"] as? String == rec.kvFile)
        #expect(env.t.requests(.post("/slots/*")).count == 1, "no save after a restore")
        #expect(env.t.requests(.get("/props")).count == 1, "a restore confirms the known fingerprint first")

        let r = try #require(o.record)
        #expect(r.mode == .restore)
        #expect(r.kvFile == rec.kvFile)
        #expect(r.digest == rec.digest)
        #expect(r.fingerprint == fp.digest)
        #expect(r.promptTokens == tokens)
        #expect(r.cachedTokens == tokens - 1)
        #expect(r.processedTokens == 1)
        #expect(r.saveMS == rec.saveMS, "the save figures of the file restored stay")
        #expect(o.fingerprintRead == fp, "the confirming read is reported")
        #expect(o.restoreIneffective == nil)
        #expect(o.dependencies == [env.spec.path, env.box.includePath])
    }

    @Test func aRestoreThatDoesNotTakeIsAPrefillAndMarksTheFingerprint() async throws {
        let env = try Env(backend: .init(forgetsRestoredKV: true))
        defer { env.box.remove() }
        let first = await env.run()
        let rec = try #require(first.record)
        let fp = try #require(first.fingerprintRead)
        env.t.restartServer()
        env.t.clearRequests()

        let o = await env.run(previous: rec, fingerprint: fp)
        #expect(o.result == .warmed(.prefill))
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "restoreIneffective", "warmed", "persisted"])
        #expect(o.events[0] == .hashCompared(unchanged: true, digest: rec.digest!, plan: .restore(kvFile: rec.kvFile!)))
        let tokens = try #require(rec.promptTokens)
        #expect(o.events[2] == .restoreIneffective(cached: 0, of: tokens))
        let report = try #require(warmedReport(o))
        #expect(report.mode == .prefill)
        #expect(report.fallback == .ineffective(cached: 0, of: tokens))
        #expect(o.restoreIneffective == fp.digest)
        #expect(env.t.requests.filter { $0.path.contains("action=restore") }.count == 1)
        #expect(env.t.requests.filter { $0.path.contains("action=save") }.count == 1, "the fallback prefill is saved")
        let r = try #require(o.record)
        #expect(r.mode == .prefill)
        #expect(r.cachedTokens == 0)
        #expect(r.kvFile == rec.kvFile, "the probe re-prefilled the slot and saved it under the same name")
        #expect(FileManager.default.fileExists(atPath: env.box.slots + "/" + rec.kvFile!))

        // the next pass under that fingerprint does not try a restore at all
        env.t.clearRequests()
        let third = await env.run(previous: r, fingerprint: fp, ineffective: [fp.digest])
        #expect(third.result == .warmed(.prefill))
        #expect(third.events.first == .hashCompared(unchanged: true, digest: rec.digest!,
                                                    plan: .prefill(reason: "restores do not take on this backend")))
        #expect(env.t.requests.filter { $0.path.contains("action=restore") }.isEmpty)
        #expect(third.restoreIneffective == nil)
        #expect(third.fingerprintRead == nil, "a prefill plan does not re-read a known fingerprint")
    }

    @Test func aServerSwapBetweenPassesTurnsTheRestoreIntoAPrefill() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let first = await env.run()
        let rec = try #require(first.record)
        let old = try #require(first.fingerprintRead)

        env.t.update { $0.modelPath = "/models/other-model.gguf"; $0.nCtx = 8192 }
        env.t.restartServer()
        env.t.clearRequests()
        let o = await env.run(previous: rec, fingerprint: old)  // the monitor has not seen the swap yet
        let fresh = try await env.fingerprint()
        #expect(fresh.digest != old.digest)
        #expect(o.result == .warmed(.prefill))
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "warmed", "persisted"])
        #expect(o.events[0] == .hashCompared(unchanged: true, digest: rec.digest!,
                                             plan: .prefill(reason: "backend fingerprint changed")))
        #expect(env.t.requests.filter { $0.path.contains("action=restore") }.isEmpty,
                "the old model's KV file is never loaded into the new one")
        #expect(o.fingerprintRead == fresh)
        let r = try #require(o.record)
        #expect(r.fingerprint == fresh.digest)
        #expect(r.mode == .prefill)
        #expect(r.kvFile == rec.kvFile)
    }

    @Test func onlyABuildChangeStillRestores() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let first = await env.run()
        let rec = try #require(first.record)
        let old = try #require(first.fingerprintRead)
        env.t.update { $0.buildInfo = "b9999-rebuilt" }
        env.t.restartServer()
        let o = await env.run(previous: rec, fingerprint: old)
        #expect(o.result == .warmed(.restore))
        #expect(o.fingerprintRead?.build == "b9999-rebuilt")
        #expect(o.fingerprintRead?.digest == old.digest)
    }

    // MARK: - template problems

    @Test func aMissingIncludeFailsTheTemplateAndKeepsThePreviousRecord() async throws {
        let env = try Env(write: false)
        defer { env.box.remove() }
        try env.box.writeTemplate("code", include: "missing.txt")
        var previous = WarmRecord()
        previous.digest = "d0"
        previous.kvFile = "code-d0.bin"
        previous.promptTokens = 99

        let o = await env.run(previous: previous)
        let missing = env.box.dir.file("tpl/missing.txt")
        let problem = TemplateProblem.includeMissing(reference: "missing.txt", path: missing)
        #expect(o.result == .templateFailed(problem.description))
        #expect(o.events == [.templateInvalid(problem, path: env.spec.path)])
        var expected = previous
        expected.lastError = problem.description
        expected.lastErrorAt = Self.now
        #expect(o.record == expected)
        #expect(env.t.requests.isEmpty, "a template problem never reaches the server")
        #expect(o.fingerprintRead == nil)
        // the missing include stays a dependency, so creating it brings the template back
        #expect(o.dependencies == [env.spec.path, missing])
    }

    @Test func aMissingTemplateFileFailsWithoutARecordToKeep() async throws {
        let env = try Env(write: false)
        defer { env.box.remove() }
        let o = await env.run()
        #expect(o.result == .templateFailed(TemplateProblem.missing(path: env.spec.path).description))
        #expect(o.record?.lastError == TemplateProblem.missing(path: env.spec.path).description)
        #expect(o.record?.digest == nil)
        #expect(o.events == [.templateInvalid(.missing(path: env.spec.path), path: env.spec.path)])
    }

    // MARK: - backend faults

    enum Route: String, CaseIterable, Sendable {
        case completion, props
        var match: ScriptedTransport.Match { self == .completion ? .post("/completion") : .get("/props") }
    }

    static var previous: WarmRecord {
        var r = WarmRecord()
        r.digest = "older-content"
        r.fingerprint = "older-fp"
        r.kvFile = "code-older.bin"
        r.promptTokens = 12
        r.mode = .prefill
        return r
    }

    @Test(arguments: ScriptedTransportTests.FaultCase.allCases, Route.allCases)
    func eachBackendFaultFailsThePassAndKeepsTheRecord(_ c: ScriptedTransportTests.FaultCase, _ route: Route) async throws {
        let env = try Env()
        defer { env.box.remove() }
        env.t.inject(c.fault, at: route.match)
        let o = await env.run(previous: Self.previous)
        #expect(o.result == .backendFailed(c.expected))
        #expect(o.events.last == .backendFailed(.warm, c.expected))
        switch route {
        case .completion:
            #expect(o.events.map(kind) == ["hashCompared", "rendered", "backendFailed"])
            #expect(o.fingerprintRead != nil)
            #expect(env.t.requests(.post("/completion")).count == 1)
        case .props:
            #expect(o.events.map(kind) == ["backendFailed"], "the fingerprint is read before the plan is made")
            #expect(o.fingerprintRead == nil)
            #expect(env.t.requests(.post("/completion")).isEmpty)
        }
        var expected = Self.previous
        expected.lastError = c.expected.description
        expected.lastErrorAt = Self.now
        #expect(o.record == expected, "the previous record stays, with the error")
        #expect(o.dependencies.contains(env.spec.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: env.box.slots).isEmpty)
    }

    @Test(arguments: ScriptedTransportTests.FaultCase.allCases)
    func aFaultOnTheConfirmingFingerprintReadFailsTheRestore(_ c: ScriptedTransportTests.FaultCase) async throws {
        let env = try Env()
        defer { env.box.remove() }
        let first = await env.run()
        let rec = try #require(first.record)
        env.t.inject(c.fault, at: .get("/props"))
        env.t.clearRequests()
        let o = await env.run(previous: rec, fingerprint: first.fingerprintRead)
        #expect(o.result == .backendFailed(c.expected))
        #expect(o.events == [.backendFailed(.warm, c.expected)])
        #expect(env.t.requests.filter { $0.path.contains("action=restore") }.isEmpty)
        #expect(o.record?.kvFile == rec.kvFile)
        #expect(o.record?.lastError == c.expected.description)
    }

    // MARK: - persist failures

    @Test(arguments: [
        (501, BackendError.unsupported("This server does not support slots action")),
        (500, BackendError.http(status: 500, message: "Unable to save slot")),
    ])
    func aFailedSaveStillWarmsButRecordsNoKVFile(_ status: Int, _ error: BackendError) async throws {
        let env = try Env()
        defer { env.box.remove() }
        let message = status == 501 ? "This server does not support slots action" : "Unable to save slot"
        env.t.inject(.status(status, message: message), at: .post("/slots/*"))
        var previous = Self.previous
        previous.kvFile = SlotFileNaming.fileName(template: "code", digest: "0123456789abcdef")
        try env.box.dir.write("slots/" + previous.kvFile!, "old kv")

        let o = await env.run(previous: previous)
        #expect(o.result == .warmed(.prefill))
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "warmed", "persistFailed"])
        #expect(o.events.last == .persistFailed(.backend(error)))
        let r = try #require(o.record)
        #expect(r.kvFile == nil)
        #expect(r.mode == .prefill)
        #expect(r.digest == (try env.digest()))
        #expect(r.lastError == "KV save failed: \(error.description)")
        #expect(r.lastErrorAt == Self.now)
        let names = try FileManager.default.contentsOfDirectory(atPath: env.box.slots)
        #expect(names == [previous.kvFile!], "no partial left; the old file is left for the orphan sweep")
    }

    @Test func aShortSaveIsAPersistFailureAfterOneRedo() async throws {
        let env = try Env()
        defer { env.box.remove() }
        env.t.respond(to: .post("/slots/*")) { _ in
            HTTPResponse(status: 200, body: Array(#"{"id_slot":0,"n_saved":3,"n_written":10}"#.utf8))
        }
        let o = await env.run()
        #expect(o.result == .warmed(.prefill))
        guard case .persistFailed(.shortSave(saved: 3, expected: let n))? = o.events.last else {
            Issue.record("expected a short save, got \(o.events.map(kind))")
            return
        }
        #expect(n == o.record?.promptTokens)
        #expect(env.t.requests(.post("/completion")).count == 2, "the slot is warmed once more before giving up")
        #expect(o.record?.kvFile == nil)
    }

    // MARK: - cancellation

    @Test func cancellingAHeldWarmEndsCancelledWithoutARecord() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let gate = ScriptedTransport.Gate()
        env.t.inject(.hold(gate), at: .post("/completion"))
        let task = Task { await env.run(previous: Self.previous) }
        await gate.waitForArrivals(1)
        task.cancel()
        let o = await task.value
        #expect(o.result == .backendFailed(.cancelled))
        #expect(o.record == nil, "a cancelled pass leaves the stored record alone")
        #expect(o.events.map(kind) == ["hashCompared", "rendered"], "cancellation is not a backend failure event")
        #expect(gate.heldCount == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: env.box.slots).isEmpty)
    }

    @Test func cancellingAHeldSaveEndsCancelledWithoutARecord() async throws {
        let env = try Env()
        defer { env.box.remove() }
        let gate = ScriptedTransport.Gate()
        env.t.inject(.hold(gate), at: .post("/slots/*"))
        let task = Task { await env.run() }
        await gate.waitForArrivals(1)
        task.cancel()
        let o = await task.value
        #expect(o.result == .backendFailed(.cancelled))
        #expect(o.record == nil)
        #expect(o.events.map(kind) == ["hashCompared", "rendered", "warmed"])
    }
}
