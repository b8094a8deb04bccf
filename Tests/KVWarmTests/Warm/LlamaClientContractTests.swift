import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A prompt long enough that 90 % of it is a meaningful share.
let contractPrompt = "You are a careful code reviewer. Read the change below and list every bug, "
    + "every missing test and every unclear name, one per line, most severe first, citing the line."

/// Runs `body` against a fresh fake llama-server, stopping it afterwards.
func withFakeServer<T>(apiKey: String? = nil, unixSocket: Bool = false, arguments: [String] = [],
                       _ body: (FakeLlamaServerProcess) async throws -> T) async throws -> T {
    let server = try await FakeLlamaServerProcess.start(apiKey: apiKey, unixSocket: unixSocket, arguments: arguments)
    defer { server.stop() }
    return try await body(server)
}

/// The error `op` throws, or nil when it succeeds.
func backendError<T>(_ op: () async throws(BackendError) -> T) async -> BackendError? {
    do {
        _ = try await op()
        return nil
    } catch { return error }
}

@Suite(.timeLimit(.minutes(1))) struct LlamaClientContractTests {
    @Test func healthyServerAnswers() async throws {
        try await withFakeServer { server in
            let client = server.client()
            #expect(await client.health() == nil)
            let props = try await client.props()
            #expect(LlamaClient.int(props["total_slots"]) == 4)
            let slots = try await client.slots()
            #expect(slots.map(\.id) == [0, 1, 2, 3])
            #expect(slots.allSatisfy { !$0.isProcessing })
            let fp = try await BackendFingerprint.read(from: client, kvTag: nil)
            #expect(fp.totalSlots == 4)
            #expect(fp.nCtx == 4096)
        }
    }

    @Test func loadingIs503Loading() async throws {
        try await withFakeServer { server in
            try await server.setFaults(["loading": [:]])
            let client = server.client()
            #expect(await backendError { () async throws(BackendError) in try await client.props() } == .loading)
            #expect(await client.health() == .loading)
        }
    }

    @Test func serverErrorIsHTTP500WithTheMessage() async throws {
        try await withFakeServer { server in
            try await server.setFaults(["status": ["status": 500, "message": "boom"]])
            let e = await backendError { () async throws(BackendError) in try await server.client().props() }
            #expect(e == .http(status: 500, message: "boom"))
            #expect(e?.isTransient == true)
        }
    }

    @Test func apiKeyIsRequiredAndSentOnEveryRequest() async throws {
        try await withFakeServer(apiKey: "s3cr3t-key") { server in
            let anonymous = server.client()
            #expect(await backendError { () async throws(BackendError) in try await anonymous.props() } == .unauthorized)
            let wrong = server.client(apiKey: "nope")
            #expect(await backendError { () async throws(BackendError) in try await wrong.slots() } == .unauthorized)

            let client = server.client(apiKey: "s3cr3t-key")
            let before = try await server.requests().count
            _ = try await client.props()
            _ = try await client.models()
            _ = try await client.slots()
            _ = try await client.tokenize("hello")
            _ = try await client.applyTemplate(messages: [(role: "user", content: "hello")])
            _ = try await client.complete(prompt: contractPrompt, slot: 0)
            _ = try await client.saveSlot(0, fileName: "key-0123456789ab.bin")
            try await client.restoreSlot(0, fileName: "key-0123456789ab.bin")
            #expect(await client.health() == nil)
            let log = Array(try await server.requests().dropFirst(before))
            #expect(log.count == 9, "props, models, slots, tokenize, apply-template, completion, save, restore, health")
            for entry in log {
                let headers = entry["headers"] as? [String: String] ?? [:]
                let auth = headers.first { $0.key.lowercased() == "authorization" }?.value
                #expect(auth == "Bearer s3cr3t-key", "\(entry["path"] ?? "?")")
                #expect(entry["status"] as? Int == 200)
            }
        }
    }

    @Test func hangPastTheTimeoutIsTimeout() async throws {
        try await withFakeServer { server in
            try await server.setFaults(["hang": ["path": "/props"]])
            let client = server.client(timeout: .milliseconds(500))
            let clock = ContinuousClock()
            let start = clock.now
            let e = await backendError { () async throws(BackendError) in try await client.props() }
            let elapsed = clock.now - start
            #expect(e == .timeout)
            #expect(elapsed >= .milliseconds(450))
            // generous: this asserts giving up at the timeout, not speed, on a shared 2-core machine
            #expect(elapsed < .milliseconds(4500), "gave up at the timeout, took \(elapsed)")
        }
    }

    @Test func connectionRefusedIsUnreachable() async throws {
        let client = LlamaClient(transport: CurlTransport(address: .http(baseURL: "http://127.0.0.1:\(try LlamaServerFixture.freePort())"),
                                                          apiKey: nil), timeout: .seconds(2))
        let e = await backendError { () async throws(BackendError) in try await client.props() }
        guard case .unreachable = e else { Issue.record("expected unreachable, got \(String(describing: e))"); return }
        #expect(await client.health() != nil)
    }

    @Test func missingUnixSocketIsUnreachable() async throws {
        let client = LlamaClient(transport: CurlTransport(address: .unixSocket(path: "/nonexistent/kvwarm-test.sock"),
                                                          apiKey: nil), timeout: .seconds(2))
        let e = await backendError { () async throws(BackendError) in try await client.props() }
        guard case .unreachable = e else { Issue.record("expected unreachable, got \(String(describing: e))"); return }
    }

    @Test func malformedJSONIsMalformed() async throws {
        try await withFakeServer { server in
            try await server.setFaults(["malformed": ["path": "/props"]])
            let e = await backendError { () async throws(BackendError) in try await server.client().props() }
            guard case .malformed = e else { Issue.record("expected malformed, got \(String(describing: e))"); return }
        }
    }

    @Test func resetMidBodyIsBroken() async throws {
        try await withFakeServer { server in
            try await server.setFaults(["reset": ["path": "/props"]])
            let e = await backendError { () async throws(BackendError) in try await server.client().props() }
            guard case .broken = e else { Issue.record("expected broken, got \(String(describing: e))"); return }
            #expect(e?.isTransient == true)
        }
    }

    @Test func unixSocketTransportWorks() async throws {
        try await withFakeServer(unixSocket: true) { server in
            guard case .unixSocket(let path) = server.address else { Issue.record("not a unix socket"); return }
            #expect(path == server.directory.file("s.sock"))
            let client = server.client()
            #expect(await client.health() == nil)
            let r = try await client.complete(prompt: contractPrompt, slot: 1)
            #expect(r.slot == 1)
            #expect(r.promptTokens > 20)
            #expect(try await server.requests(path: "/completion").count == 1)
        }
    }

    @Test func cancellingDuringAHangReturnsCancelledPromptly() async throws {
        try await withFakeServer { server in
            try await server.setFaults(["hang": ["path": "/props"]])
            let client = server.client(timeout: .seconds(30))
            let task = Task { () -> BackendError? in
                await backendError { () async throws(BackendError) in try await client.props() }
            }
            #expect(try await server.waitForRequest(path: "/props"), "the request reached the server")
            let clock = ContinuousClock()
            let start = clock.now
            task.cancel()
            let e = await task.value
            let elapsed = clock.now - start
            #expect(e == .cancelled)
            // far below the 30 s request timeout: the transfer was aborted, not waited out (a loaded 2-core
            // machine has shown 1.9 s here, so the bound is not a speed target)
            #expect(elapsed < .seconds(10), "cancellation took \(elapsed)")
        }
    }

    /// Consecutive requests reuse one pooled handle and its keep-alive connection, over TCP and
    /// a unix socket; a connection the server drops is replaced without an error.
    @Test(arguments: [false, true]) func consecutiveRequestsReuseOneConnection(unixSocket: Bool) async throws {
        try await withFakeServer(unixSocket: unixSocket) { server in
            let client = server.client()
            for _ in 0..<6 { _ = try await client.slots() }
            let conns = try await server.requests(path: "/slots").compactMap { $0["conn"] as? Int }
            #expect(conns.count == 6)
            #expect(Set(conns).count == 1, "each request opened a connection: \(conns)")
            // the server drops the connection without answering; curl may retry that once on a
            // fresh connection (the request died on a reused one), so the outcome is not asserted
            try await server.setFaults(["close": ["path": "/props", "times": 1]])
            _ = await backendError { () async throws(BackendError) in try await client.props() }
            _ = try await client.slots()
            let after = try await server.requests(path: "/slots").compactMap { $0["conn"] as? Int }
            #expect(after.count == 7)
            #expect(after.last != conns.last, "a new connection after the server dropped the old one")
        }
    }

    /// Threads of this process named `name`.
    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }

    /// At most two workers stay parked after a burst of concurrent requests, and they exit
    /// when their transport goes away (a reload replaces it): no thread leaks per reload.
    @Test func poolKeepsTwoParkedWorkersAndReleasesThemWithItsTransport() async throws {
        try await withFakeServer { server in
            let name = "kvw-t\(getpid() % 10_000)"
            let client = LlamaClient(transport: CurlTransport(address: server.address, apiKey: nil, workerThreadName: name),
                                     timeout: .seconds(10))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<5 { group.addTask { _ = try await client.slots() } }
                try await group.waitForAll()
            }
            try await Hostile.eventually("the extra workers exit", timeout: .seconds(5)) { Self.threads(named: name) <= 2 }
            #expect(Self.threads(named: name) >= 1, "a worker stays parked for the next request")
            _ = try await client.slots()
        }  // the client, and with it the transport, ends here
        let name = "kvw-t\(getpid() % 10_000)"
        try await Hostile.eventually("parked workers exit with their transport", timeout: .seconds(5)) {
            Self.threads(named: name) == 0
        }
    }
}
