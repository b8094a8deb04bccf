import Foundation
import Synchronization
import Testing
@testable import KVWarm
import KVWarmTestSupport

@Suite(.timeLimit(.minutes(1))) struct TemplateWarmerContractTests {
    static let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

    /// Prefills the contract prompt and saves it; returns the file name and token count.
    func prefillAndSave(_ server: FakeLlamaServerProcess, _ warmer: TemplateWarmer) async throws -> (String, Int) {
        let report = try await warmer.prefill(contractPrompt, template: "t")
        #expect(report.mode == .prefill)
        #expect(report.processedTokens == report.promptTokens)
        let persister = SlotPersister(client: warmer.client, slotSaveDir: server.slotSavePath)
        let name = SlotFileNaming.fileName(template: "code", digest: Self.digest)
        let saved = try await persister.save(slot: report.slot, fileName: name, expectedTokens: report.promptTokens,
                                             redo: { () async throws(BackendError) -> Int in report.slot })
        #expect(saved.tokens == report.promptTokens)
        #expect(FileManager.default.fileExists(atPath: server.slotSavePath + "/" + name))
        #expect(!FileManager.default.fileExists(atPath: server.slotSavePath + "/" + name + ".partial"))
        return (name, report.promptTokens)
    }

    @Test func restoreTakes() async throws {
        try await withFakeServer { server in
            let warmer = TemplateWarmer(client: server.client(), scheduler: SlotScheduler())
            let (name, tokens) = try await prefillAndSave(server, warmer)
            let r = try await warmer.restore(contractPrompt, fileName: name, template: "t")
            #expect(r.mode == .restore)
            #expect(r.fallback == nil)
            #expect(r.promptTokens == tokens)
            #expect(Double(r.cachedTokens) >= 0.9 * Double(tokens))
            #expect(try await server.requests(path: "/slots/").contains { ($0["path"] as? String)?.contains("action=restore") == true })
        }
    }

    @Test func restoreTookNeedsNinetyPercentOrAllButTheLastToken() {
        #expect(TemplateWarmer.restoreTook(cached: 900, of: 1000))
        #expect(!TemplateWarmer.restoreTook(cached: 899, of: 1000))
        #expect(TemplateWarmer.restoreTook(cached: 8, of: 9), "a short template keeps all but its last token")
        #expect(!TemplateWarmer.restoreTook(cached: 7, of: 9))
        #expect(!TemplateWarmer.restoreTook(cached: 0, of: 9), "the SWA trap on a short template")
        #expect(TemplateWarmer.restoreTook(cached: 0, of: 1))
    }

    @Test func restoreRefusedFallsBackToPrefill() async throws {
        try await withFakeServer { server in
            let warmer = TemplateWarmer(client: server.client(), scheduler: SlotScheduler())
            let (name, tokens) = try await prefillAndSave(server, warmer)
            try await server.setFaults(["restore_400": ["message": "invalid slot save file"]])
            let r = try await warmer.restore(contractPrompt, fileName: name, template: "t")
            #expect(r.fallback == .refused("invalid slot save file"))
            #expect(r.mode == .prefill)
            #expect(r.promptTokens == tokens)
        }
    }

    @Test func restoreThatDoesNotTakeIsIneffective() async throws {
        try await withFakeServer { server in
            let warmer = TemplateWarmer(client: server.client(), scheduler: SlotScheduler())
            let (name, tokens) = try await prefillAndSave(server, warmer)
            try await server.setFaults(["low_cache_n": [:]])
            let r = try await warmer.restore(contractPrompt, fileName: name, template: "t")
            #expect(r.fallback == .ineffective(cached: 0, of: tokens))
            #expect(r.mode == .prefill)
        }
    }

    @Test func shortSaveIsRedoneOnce() async throws {
        try await withFakeServer { server in
            let warmer = TemplateWarmer(client: server.client(), scheduler: SlotScheduler())
            let report = try await warmer.prefill(contractPrompt, template: "t")
            try await server.setFaults(["short_n_saved": ["times": 1]])
            let redos = Atomic<Int>(0)
            let persister = SlotPersister(client: warmer.client, slotSaveDir: server.slotSavePath)
            let name = SlotFileNaming.fileName(template: "code", digest: Self.digest)
            let saved = try await persister.save(slot: report.slot, fileName: name, expectedTokens: report.promptTokens,
                                                 redo: { () async throws(BackendError) -> Int in
                redos.add(1, ordering: .relaxed)
                return try await warmer.prefill(contractPrompt, template: "t").slot
            })
            #expect(redos.load(ordering: .relaxed) == 1)
            #expect(saved.tokens == report.promptTokens)
            #expect(saved.bytes > 0)
            #expect(FileManager.default.fileExists(atPath: server.slotSavePath + "/" + name))
        }
    }

    @Test(arguments: [true, false])
    func persistentShortSaveFails(knowsSlotDir: Bool) async throws {
        try await withFakeServer { server in
            let warmer = TemplateWarmer(client: server.client(), scheduler: SlotScheduler())
            let report = try await warmer.prefill(contractPrompt, template: "t")
            try await server.setFaults(["short_n_saved": ["delta": 2]])
            let redos = Atomic<Int>(0)
            let persister = SlotPersister(client: warmer.client, slotSaveDir: knowsSlotDir ? server.slotSavePath : nil)
            let name = SlotFileNaming.fileName(template: "code", digest: Self.digest)
            do {
                _ = try await persister.save(slot: report.slot, fileName: name, expectedTokens: report.promptTokens,
                                             redo: { () async throws(BackendError) -> Int in
                    redos.add(1, ordering: .relaxed)
                    return report.slot
                })
                Issue.record("a short save succeeded")
            } catch {
                let f = error as? SlotPersister.Failure
                #expect(f == .shortSave(saved: report.promptTokens - 2, expected: report.promptTokens))
                #expect(f?.reason == "short_save")
            }
            #expect(redos.load(ordering: .relaxed) == 1, "redone exactly once")
            if knowsSlotDir {
                let left = try FileManager.default.contentsOfDirectory(atPath: server.slotSavePath)
                #expect(left.isEmpty, "neither the partial nor a final file is left: \(left)")
            }
        }
    }

    @Test func saveFailureRemovesThePartial() async throws {
        try await withFakeServer { server in
            let warmer = TemplateWarmer(client: server.client(), scheduler: SlotScheduler())
            let report = try await warmer.prefill(contractPrompt, template: "t")
            try await server.setFaults(["save_enospc": [:]])
            let persister = SlotPersister(client: warmer.client, slotSaveDir: server.slotSavePath)
            do {
                _ = try await persister.save(slot: report.slot, fileName: SlotFileNaming.fileName(template: "c", digest: Self.digest),
                                             expectedTokens: report.promptTokens,
                                             redo: { () async throws(BackendError) -> Int in report.slot })
                Issue.record("a failed save succeeded")
            } catch {
                guard case .backend(.http(500, _))? = error as? SlotPersister.Failure else { Issue.record("unexpected \(error)"); return }
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: server.slotSavePath).isEmpty)
        }
    }
}
