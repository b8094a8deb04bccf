import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KVWarm
import Logging
import Synchronization

/// `kvwarm warm`: one-shot warm of some or all templates.
struct WarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warm", abstract: "Warm templates once (all when none is named) and exit.")

    @OptionGroup var config: ConfigOptions
    @Argument(help: "Template names (default: every template).") var names: [String] = []
    @Flag(name: .long, help: "Prefill even where a KV file could be restored.") var forcePrefill = false
    @OptionGroup var log: LogOptions

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let logger = log.bootstrap()
        let c = try config.load()
        let unknown = names.filter { c.template(named: $0) == nil }
        guard unknown.isEmpty else {
            printError("kvwarm: no such template: \(unknown.joined(separator: ", ")); configured: \(c.templates.map(\.name).joined(separator: ", "))")
            throw ExitCode(SysExit.usage.rawValue)
        }
        let targets = names.isEmpty ? c.templates.map(\.name) : names
        try StateStore(directory: c.stateDir).prepare()
        // the running daemon owns the slots and the state file: a second writer would re-pin its slots
        let lock: InstanceLock
        do {
            lock = try InstanceLock.acquire(directory: c.stateDir)
        } catch {
            printError("kvwarm: \(error).\nThe running daemon keeps the templates warm: `touch` a template to re-warm it, "
                       + "or `systemctl reload kvwarm` after a config change.")
            throw ExitCode(SysExit.tempFail.rawValue)
        }
        defer { withExtendedLifetime(lock) {} }
        let tty = isatty(2) == 1
        let total = targets.count
        let results = ResultBox()
        // one pipeline after the other, each with its own state file
        for key in c.pipelines {
            let mine = targets.filter { c.template(named: $0)?.pipeline == key }
            if mine.isEmpty { continue }
            let parts = try config.parts(c, key)
            let store = StateStore(directory: c.stateDir, fileName: key.stateFileName)
            var state = WarmState()
            if case .loaded(let s) = store.load() { state = s }
            if forcePrefill { for n in mine { state.templates[n]?.digest = nil } }
            if let e = await parts.client.health() {
                printError("kvwarm: backend \(key) (\(parts.config.backend.address)) unavailable: \(e)")
                for n in mine { _ = results.add(n, .backendFailed(e)) }
                continue
            }
            let writer = StateWriter(store: store, state: state, logger: logger)
            let identity = BackendIdentity(scheduler: parts.warmer.scheduler, writer: writer, logger: logger)
            let coordinator = WarmCoordinator(parts: parts, identity: identity, writer: writer,
                                              logger: PipelineAssembly.logger(logger, key),
                                              backoff: Backoff(base: .seconds(3600), cap: .seconds(3600)))
            await coordinator.setProgressObserver { name, result in
                let n = results.add(name, result)
                if tty { printError("[\(n)/\(total)] \(name): \(describe(result))") }
            }
            await coordinator.enqueue(mine)
            let worker = Task { await coordinator.runWorker() }
            await coordinator.drained()
            worker.cancel()
            _ = await worker.value
        }
        let failures = results.failures
        if !tty || !failures.isEmpty {
            for (name, r) in results.all { print("\(name): \(describe(r))") }
        }
        if !failures.isEmpty {
            let backendDown = failures.contains { if case .backendFailed = $0.1 { true } else { false } }
            throw ExitCode((backendDown ? SysExit.unavailable : SysExit.dataError).rawValue)
        }
    }
}

private func describe(_ r: PassResult) -> String {
    switch r {
    case .warmed(let m): "warm (\(m.rawValue))"
    case .templateFailed(let why): "FAILED: \(why)"
    case .backendFailed(let e): "FAILED: \(e)"
    case .removed: "removed"
    }
}

/// Collects results from the coordinator's progress callback.
private final class ResultBox: Sendable {
    private let items = Mutex<[(String, PassResult)]>([])
    func add(_ n: String, _ r: PassResult) -> Int {
        items.withLock { $0.append((n, r)); return $0.count }
    }
    var all: [(String, PassResult)] { items.withLock { $0 } }
    var failures: [(String, PassResult)] {
        all.filter { if case .warmed = $0.1 { false } else { true } }
    }
}
