import ArgumentParser
import Foundation
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
        let parts = try config.loadParts()
        let unknown = names.filter { parts.config.template(named: $0) == nil }
        guard unknown.isEmpty else {
            printError("kvwarm: no such template: \(unknown.joined(separator: ", ")); configured: \(parts.config.templates.map(\.name).joined(separator: ", "))")
            throw ExitCode(SysExit.usage.rawValue)
        }
        let targets = names.isEmpty ? parts.config.templates.map(\.name) : names
        let store = StateStore(directory: parts.config.stateDir)
        try store.prepare()
        // the running daemon owns the slots and the state file: a second writer would re-pin its slots
        let lock: InstanceLock
        do {
            lock = try InstanceLock.acquire(directory: parts.config.stateDir)
        } catch {
            printError("kvwarm: \(error).\nThe running daemon keeps the templates warm: `touch` a template to re-warm it, "
                       + "or `systemctl reload kvwarm` after a config change.")
            throw ExitCode(SysExit.tempFail.rawValue)
        }
        defer { withExtendedLifetime(lock) {} }
        var state = WarmState()
        if case .loaded(let s) = store.load() { state = s }
        if forcePrefill { for n in targets { state.templates[n]?.digest = nil } }
        if let e = await parts.client.health() {
            printError("kvwarm: backend \(parts.config.backend.address) unavailable: \(e)")
            throw ExitCode(SysExit.unavailable.rawValue)
        }
        let writer = StateWriter(store: store, state: state, logger: logger)
        let identity = BackendIdentity(scheduler: parts.warmer.scheduler, writer: writer, logger: logger)
        let coordinator = WarmCoordinator(parts: parts, identity: identity, writer: writer, logger: logger,
                                          backoff: Backoff(base: .seconds(3600), cap: .seconds(3600)))
        let tty = isatty(2) == 1
        let total = targets.count
        let results = ResultBox()
        await coordinator.setProgressObserver { name, result in
            let n = results.add(name, result)
            if tty { printError("[\(n)/\(total)] \(name): \(describe(result))") }
        }
        await coordinator.enqueue(targets)
        let worker = Task { await coordinator.runWorker() }
        await coordinator.drained()
        worker.cancel()
        _ = await worker.value
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
