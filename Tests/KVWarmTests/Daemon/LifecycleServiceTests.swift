import Foundation
@testable import KVWarm
import KVWarmTestSupport
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

/// Records every sd_notify message; tests await the one they need.
final class RecordingNotifyTransport: NotifyTransport {
    private let sent = Mutex<[String]>([])
    private let stream: AsyncStream<String>
    private let sink: AsyncStream<String>.Continuation

    init() { (stream, sink) = AsyncStream.makeStream(bufferingPolicy: .unbounded) }

    func send(_ state: String) -> Bool {
        sent.withLock { $0.append(state) }
        sink.yield(state)
        return true
    }

    var messages: [String] { sent.withLock { $0 } }

    /// Returns the first message (sent before or after the call) that contains `text`.
    func await(_ text: String) async -> String? {
        if let m = messages.first(where: { $0.contains(text) }) { return m }
        for await m in stream where m.contains(text) { return m }
        return nil
    }
}

/// One in-process daemon core: config files in a temp directory, the scripted backend, a coordinator.
struct DaemonRig {
    let dir: TemporaryDirectory
    let transport: ScriptedTransport
    let notify = RecordingNotifyTransport()
    let coordinator: WarmCoordinator
    let scheduler = SlotScheduler()

    var notifier: Notifier { Notifier(transport: notify) }
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    init(templates: [String: String], startup: String = "") throws {
        dir = try TemporaryDirectory("kvlife")
        transport = ScriptedTransport()
        let parts = try Self.parts(dir, templates: templates, startup: startup, transport: transport, scheduler: scheduler)
        let writer = StateWriter(store: StateStore(directory: dir.file("state")), state: WarmState(), logger: Self.logger)
        try writer.store.prepare()
        let identity = BackendIdentity(scheduler: scheduler, writer: writer, logger: Self.logger)
        coordinator = WarmCoordinator(parts: parts, identity: identity, writer: writer, logger: Self.logger)
    }

    /// Writes the templates and a config naming them, and builds the parts from it.
    static func parts(_ dir: TemporaryDirectory, templates: [String: String], startup: String = "",
                      transport: ScriptedTransport, scheduler: SlotScheduler) throws -> PipelineParts {
        var entries: [String] = []
        for (name, text) in templates.sorted(by: { $0.key < $1.key }) {
            entries.append("\"\(name)\": \"\(try dir.write("tpl/\(name).txt", text))\"")
        }
        let config = """
            { "backend": { "url": "http://127.0.0.1:9" }, "state_dir": "\(dir.file("state"))",
              \(startup.isEmpty ? "" : "\"startup\": \(startup),")
              "templates": { \(entries.joined(separator: ", ")) } }
            """
        let path = try dir.write("config.json", config)
        let loaded = try ConfigLoader(environment: [:]).load(path: path)
        return PipelineParts(config: loaded, transport: transport, scheduler: scheduler)
    }

    static let text = String(repeating: "A long shared system prompt for the warm. ", count: 12) + "<{message}>"
}

@Suite(.timeLimit(.minutes(1))) struct LifecycleServiceTests {
    @Test func readyIsSentOnlyAfterTheStartupWarm() async throws {
        let rig = try DaemonRig(templates: ["a": DaemonRig.text, "b": "Other. " + DaemonRig.text])
        defer { rig.dir.remove() }
        let gate = ScriptedTransport.Gate()
        rig.transport.inject(.hold(gate), at: .post("/completion"), times: 1)
        let readiness = ReadinessGate()
        let startup = StartupSequence(coordinator: rig.coordinator, notifier: rig.notifier, gate: readiness,
                                      logger: DaemonRig.logger)
        let worker = Task { await rig.coordinator.runWorker() }
        let run = Task { try await startup.run() }
        await gate.waitForArrivals(1)
        #expect(await rig.notify.await("STATUS=warming 1/2") != nil)
        #expect(!rig.notify.messages.contains { $0.contains("READY=1") }, "no READY while the first warm is held")
        gate.open()
        let ready = await rig.notify.await("READY=1")
        #expect(ready?.contains("STATUS=watching 2 templates (0 failed)") == true)
        try await run.value
        await readiness.wait()  // open: returns at once
        #expect(rig.coordinator.writer.state.templates.keys.sorted() == ["a", "b"])
        #expect(rig.transport.requests(.post("/completion")).count == 2)
        worker.cancel()
        await worker.value
    }

    @Test func aWarmThatCouldNotBeSavedCountsAsFailedInReady() async throws {
        let rig = try DaemonRig(templates: ["a": DaemonRig.text, "b": "Other. " + DaemonRig.text])
        defer { rig.dir.remove() }
        rig.transport.inject(.internalError, at: .post("/slots/*"), times: 1)
        let startup = StartupSequence(coordinator: rig.coordinator, notifier: rig.notifier, gate: ReadinessGate(),
                                      logger: DaemonRig.logger)
        let worker = Task { await rig.coordinator.runWorker() }
        try await startup.run()
        let ready = await rig.notify.await("READY=1")
        #expect(ready?.contains("STATUS=watching 2 templates (1 failed)") == true, "\(ready ?? "-")")
        #expect(await rig.coordinator.problems.values.contains { $0.contains("KV save failed") })
        worker.cancel()
        await worker.value
    }

    @Test func anUnavailableBackendWithPolicyFailExits69() async throws {
        let rig = try DaemonRig(templates: ["a": DaemonRig.text],
                                startup: #"{ "backend_wait_seconds": 0, "on_unavailable": "fail" }"#)
        defer { rig.dir.remove() }
        rig.transport.inject(.refused, at: .any)
        let startup = StartupSequence(coordinator: rig.coordinator, notifier: rig.notifier, gate: ReadinessGate(),
                                      logger: DaemonRig.logger)
        await #expect(throws: DaemonExit.self) { try await startup.run() }
        do { try await startup.run() } catch let e as DaemonExit { #expect(e.code == .unavailable) }
        #expect(rig.notify.messages.contains { $0.contains("ERRNO=113") })
        #expect(!rig.notify.messages.contains { $0.contains("READY=1") })
    }

    @Test func anUnavailableBackendWithPolicyDegradedIsReadySayingSo() async throws {
        let rig = try DaemonRig(templates: ["a": DaemonRig.text],
                                startup: #"{ "backend_wait_seconds": 0, "on_unavailable": "degraded" }"#)
        defer { rig.dir.remove() }
        rig.transport.inject(.refused, at: .any)
        let readiness = ReadinessGate()
        let startup = StartupSequence(coordinator: rig.coordinator, notifier: rig.notifier, gate: readiness,
                                      logger: DaemonRig.logger)
        try await startup.run()
        let ready = await rig.notify.await("READY=1")
        #expect(ready?.contains("degraded") == true)
        await readiness.wait()
        #expect(rig.transport.requests(.post("/completion")).isEmpty, "nothing warmed while the backend is away")
    }

    @Test func aReloadWarmsWhatIsNewAndARejectedOneKeepsTheRunningConfig() async throws {
        let rig = try DaemonRig(templates: ["a": DaemonRig.text])
        defer { rig.dir.remove() }
        let worker = Task { await rig.coordinator.runWorker() }
        await rig.coordinator.enqueueAll()
        await rig.coordinator.drained()
        let (dir, transport, scheduler) = (rig.dir, rig.transport, rig.scheduler)
        let reload = ReloadService(pipelines: [PipelineKey(): rig.coordinator], notifier: rig.notifier, gate: ReadinessGate(),
                                   logger: DaemonRig.logger, load: { _ throws(ConfigError) -> [PipelineKey: PipelineParts] in
            do {
                return [PipelineKey(): try DaemonRig.parts(dir, templates: ["a": DaemonRig.text, "b": "New. " + DaemonRig.text],
                                                           transport: transport, scheduler: scheduler)]
            } catch let e as ConfigError { throw e } catch { throw ConfigError(file: "", key: nil, message: "\(error)") }
        })
        await reload.reload()
        #expect(await rig.coordinator.parts.config.templates.map(\.name).sorted() == ["a", "b"])
        #expect(rig.coordinator.writer.state.templates["b"]?.mode == .prefill, "the new template is warm")
        #expect(transport.requests(.post("/completion")).count == 2, "the unchanged one is not warmed again")
        #expect(await rig.notify.await("STATUS=watching 2 templates (0 failed)") != nil)

        let rejecting = ReloadService(pipelines: [PipelineKey(): rig.coordinator], notifier: rig.notifier, gate: ReadinessGate(),
                                      logger: DaemonRig.logger, load: { _ throws(ConfigError) -> [PipelineKey: PipelineParts] in
            throw ConfigError(file: "/etc/kvwarm/config.json", key: "templates", message: "broken")
        })
        await rejecting.reload()
        #expect(await rig.coordinator.parts.config.templates.count == 2, "the running config stays")
        #expect(await rig.notify.await("last reload rejected") != nil)
        worker.cancel()
        await worker.value
    }

    @Test func gracefulShutdownMidWarmSendsStoppingCancelsTheWarmAndWritesTheState() async throws {
        let rig = try DaemonRig(templates: ["a": DaemonRig.text, "b": "Other. " + DaemonRig.text])
        defer { rig.dir.remove() }
        let gate = ScriptedTransport.Gate()
        // the first template warms; the second is held in flight
        rig.transport.inject(.hold(gate), at: .post("/completion"))
        let service = WarmWorker(coordinator: rig.coordinator, notifier: rig.notifier, logger: DaemonRig.logger)
        try await testGracefulShutdown { trigger in
            let run = Task { try await service.run() }
            await rig.coordinator.enqueueAll()
            await gate.waitForArrivals(1)
            trigger.triggerGracefulShutdown()
            try await run.value
        }
        #expect(rig.notify.messages.contains { $0.contains("STOPPING=1") })
        #expect(await rig.coordinator.stopped)
        #expect(FileManager.default.fileExists(atPath: rig.dir.file("state/state.json")), "the state was written")
        #expect(rig.coordinator.writer.state.templates["a"]?.digest == nil, "the cancelled warm left no record")
    }
}
