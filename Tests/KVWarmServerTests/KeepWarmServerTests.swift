import Foundation
import KVWarmTestSupport
import Testing

/// Keeping templates warm under traffic, against the real llama-server with the real `openai`
/// client: a short run of the traffic benchmark (Tests/Benchmarks/traffic.py) on this build of
/// kvwarm. The server's `timings.cache_n` on every new conversation's first request is the
/// evidence; the script computes each template's length from the server's own tokenizer.
@Suite(.serialized, .enabled(if: LlamaServerFixture.isAvailable && OpenAIAgentClient.isAvailable,
                             "run .ci/provision first (llama-server, model, openai venv)"))
struct KeepWarmServerTests {
    static let script = FakeLlamaServerProcess.repositoryRoot + "/Tests/Benchmarks/traffic.py"

    struct Setup {
        var hits: Int
        var total: Int
        var laterReuse: Double
        var warnings: [String]
        var firstsByRound: [Int: [Double]]
    }

    /// Runs the traffic script with `np` slot settings ("auto" or a number) for this build only.
    static func run(np: String, rounds: Int) async throws -> Setup {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let out = dir.file("traffic.json")
        let args = [script, "--server", LlamaServerFixture.binary, "--model", LlamaServerFixture.model,
                    "--binary", KVWarmProcess.binary, "--only", "now", "--np", np, "--rounds", String(rounds),
                    "--templates", "2", "--template-tokens", "700", "--ctx", "16384", "--out", out]
        let r = try await ProcessRunner.run(OpenAIAgentClient.python, args)
        guard r.status == 0 else { throw FixtureError("traffic.py failed (\(r.status)): \(r.stderr)") }
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        let s = (root["setups"] as! [[String: Any]])[0]
        var byRound: [Int: [Double]] = [:]
        for f in s["firsts"] as! [[String: Any]] { byRound[f["round"] as! Int, default: []].append(f["reuse"] as! Double) }
        return Setup(hits: s["hits"] as! Int, total: s["total"] as! Int, laterReuse: s["later_reuse_mean"] as! Double,
                     warnings: s["warnings"] as! [String], firstsByRound: byRound)
    }

    @Test func withExplicitSlotsEveryNewConversationReusesItsTemplate() async throws {
        let s = try await Self.run(np: "4", rounds: 3)
        #expect(s.total == 6)
        #expect(s.hits == s.total, "new conversations reusing ≥ 90 % of their template: \(s.hits)/\(s.total)")
        #expect(s.laterReuse >= 0.95, "later turns reuse their conversation: \(s.laterReuse)")
        #expect(!s.warnings.contains { $0.contains("clears idle slots") }, "no slot-policy warning with -np 4: \(s.warnings)")
    }

    @Test func withDefaultSlotsTheGuardWarnsAndConversationsKeepTheirCache() async throws {
        let s = try await Self.run(np: "auto", rounds: 2)
        #expect(s.warnings.contains { $0.contains("clears idle slots") }, "the guard says so: \(s.warnings)")
        // templates are kept in the server's RAM cache, never in slots where they would cut
        // conversations back to the template
        #expect(s.laterReuse >= 0.95, "later turns reuse their conversation: \(s.laterReuse)")
        // round 0 hits by the startup warm alone (kvwarm before keeping warm did too); round 1
        // hits only because kvwarm put the templates back into the RAM cache after round 0 took
        // them (before: 0 of them)
        #expect(s.firstsByRound[0]?.allSatisfy { $0 >= 0.9 } == true, "first round: \(s.firstsByRound)")
        #expect(s.firstsByRound[1]?.allSatisfy { $0 >= 0.9 } == true, "second round: \(s.firstsByRound)")
    }
}
