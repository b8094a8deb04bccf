import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// A router refuses templates without a model; a model's fingerprint is its child's, with
/// the child's KV-shaping arguments in the digest.
@Suite struct RouterFingerprintTests {
    static let routerProps = #"{"role":"router","max_instances":4,"models_autoload":true,"model_path":"none","build_info":"b1"}"#

    static func routerModels(args: [String], id: String = "alpha") -> String {
        let a = try! JSONSerialization.data(withJSONObject: args)
        return #"{"object":"list","data":[{"id":"zeta","status":{"value":"unloaded","args":[]}},"#
            + #"{"id":"\#(id)","aliases":[],"status":{"value":"loaded","args":\#(String(decoding: a, as: UTF8.self))},"meta":{"n_ctx":4096,"n_vocab":262144}}]}"#
    }

    @Test func aRouterWithoutAModelIsRefusedWithTheKeyToSet() async {
        let t = ScriptedTransport()
        t.respond(to: .init(method: "GET", path: "/props"), json: Self.routerProps)
        let client = LlamaClient(transport: t, timeout: .seconds(1))
        do {
            _ = try await BackendFingerprint.read(from: client, kvTag: nil)
            Issue.record("a router read as a single-model server")
        } catch {
            guard case .routerMismatch(let m) = error else { Issue.record("\(error)"); return }
            #expect(m.contains("templates.NAME.model"))
            #expect(!error.isTransient, "an operator must change the config")
        }
    }

    @Test func aModelsFingerprintTakesItsEntryAndItsChildsArguments() async throws {
        let t = ScriptedTransport()
        let args = ["llama-server", "--host", "127.0.0.1", "--port", "40001", "--alias", "alpha", "--ctx-size", "4096",
                    "--swa-full", "--model", "/m/alpha.gguf", "--parallel", "2", "-ctk", "q8_0"]
        t.respond(to: .init(method: "GET", path: "/v1/models"), json: Self.routerModels(args: args))
        let client = LlamaClient(transport: t, timeout: .seconds(1), model: "alpha")
        let fp = try await BackendFingerprint.read(from: client, kvTag: nil)
        #expect(fp.serverArgs == "--ctx-size=4096 --swa-full --parallel=2 -ctk=q8_0", "port, host and alias left out")
        #expect(t.requests.allSatisfy { $0.path.contains("model=alpha&autoload=false") }, "\(t.requests.map(\.path))")
        // a reload on another port is the same KV layout; other cache types are not
        let t2 = ScriptedTransport()
        var moved = args
        moved[4] = "40999"
        t2.respond(to: .init(method: "GET", path: "/v1/models"), json: Self.routerModels(args: moved))
        let same = try await BackendFingerprint.read(from: LlamaClient(transport: t2, timeout: .seconds(1), model: "alpha"), kvTag: nil)
        #expect(same.digest == fp.digest)
        let t3 = ScriptedTransport()
        t3.respond(to: .init(method: "GET", path: "/v1/models"),
                   json: Self.routerModels(args: args.filter { $0 != "--swa-full" }))
        let other = try await BackendFingerprint.read(from: LlamaClient(transport: t3, timeout: .seconds(1), model: "alpha"), kvTag: nil)
        #expect(other.digest != fp.digest)
        #expect(other.differences(from: fp) == ["server_args"])
    }

    @Test func aModelOnAServerThatIsNoRouterIsRefused() async {
        let client = LlamaClient(transport: ScriptedTransport(), timeout: .seconds(1), model: "alpha")
        await #expect(throws: BackendError.self) { _ = try await BackendFingerprint.read(from: client, kvTag: nil) }
        do { _ = try await BackendFingerprint.read(from: client, kvTag: nil) } catch {
            guard case .routerMismatch(let m) = error else { Issue.record("\(error)"); return }
            #expect(m.contains("\"alpha\"") && m.contains("not a llama-server router"), "\(m)")
        }
    }

    @Test func singleModelDigestsAreUnchanged() {
        let fp = BackendFingerprint(modelPath: "/m.gguf", totalSlots: 2, nCtx: 4096, chatTemplateSHA256: "t", nParams: 1,
                                    modelSize: 1, nVocab: 1, nEmbd: 1, nCtxTrain: 1, kvTag: nil, build: "b1")
        // the digest as computed before router models existed: state files keep matching
        let before = ["v1", "/m.gguf", "2", "4096", "t", "1", "1", "1", "1", "1", ""]
            .map { "\($0.utf8.count):\($0)" }.joined(separator: "|")
        #expect(fp.digest == HexEncoding.lowercase(SHA256.hash(data: Array(before.utf8))))
        var routed = fp
        routed.serverArgs = ""
        #expect(routed.digest != fp.digest, "a router model's fingerprint never equals a single server's")
    }
}

/// The backend monitor's wake: a poke ends the sleep in progress or the next one.
@Suite struct CheckWakeTests {
    @Test func aPokeEndsTheSleepAndAnEarlyPokeTheNextOne() async {
        let wake = CheckWake()
        let started = ContinuousClock.now
        let sleeper = Task { await wake.sleep(for: .seconds(60)) }
        wake.poke()  // during the sleep, or just before it: either way it ends it
        #expect(await sleeper.value == true)
        #expect(started.duration(to: .now) < .seconds(30))
        let timed = ContinuousClock.now
        #expect(await wake.sleep(for: .milliseconds(50)) == true, "unpoked, it sleeps its time")
        #expect(timed.duration(to: .now) >= .milliseconds(50))
        let cancelled = Task { await wake.sleep(for: .seconds(60)) }
        cancelled.cancel()
        #expect(await cancelled.value == false)
    }
}
