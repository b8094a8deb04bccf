import ArgumentParser
import Foundation
import KVWarm

/// `kvwarm status`: whether the daemon runs, each template's state and the backend's health.
///
/// Exit status: 0 when kvwarm runs and every template is warm with its current content;
/// 1 when it runs but a template is failing, pending (its file changed since its warm) or
/// never warmed, or the backend is unavailable; 3 when no kvwarm runs on this state directory.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show each template's last warm (from the state file) and the backend's health.")

    @OptionGroup var config: ConfigOptions
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false
    @Flag(name: .long, help: ArgumentHelp(
        "Readiness probe: exit 0 only when kvwarm runs on this state directory, has sent READY=1 and every template is warm with its current content (from the state file; the backend is not contacted); 1 otherwise.",
        discussion: "For a Kubernetes readinessProbe or a systemd ExecCondition; prints one line."))
    var ready = false

    func run() async throws {
        let c = try config.load()
        let store = StateStore(directory: c.stateDir)
        var state = WarmState()
        var stateNote: String?
        switch store.load() {
        case .loaded(let s): state = s
        case .absent: stateNote = "no state file yet at \(store.path)"
        case .discarded(let r, _): stateNote = "state file unreadable: \(r)"
        }
        if ready { try readiness(c, state: state, stateNote: stateNote) }
        let key = try? KVWarmDaemon.readAPIKey(c)
        let client = LlamaClient(transport: CurlTransport(address: c.backend.address, apiKey: key ?? nil),
                                 timeout: .seconds(5))
        let health = await client.health()
        let fp = try? await BackendFingerprint.read(from: client, kvTag: c.backend.kvTag)
        let iso = ISO8601DateFormatter()
        let holder = InstanceLock.holder(directory: c.stateDir)
        let loader = SnapshotLoader(includeRoots: c.includeRoots, maxBytes: c.maxTemplateBytes)
        let states = Dictionary(uniqueKeysWithValues: c.templates.map { t in
            (t.name, TemplateState.of(t, record: state.templates[t.name], loader: loader))
        })
        let allWarm = health == nil && states.values.allSatisfy { $0.label == "warm" }
        let exit: Int32 = holder == .none ? 3 : (allWarm ? 0 : 1)

        if json {
            var templates: [[String: Any]] = []
            for t in c.templates {
                let r = state.templates[t.name]
                let ts = states[t.name]!
                var o: [String: Any] = ["name": t.name, "path": t.path, "endpoint": t.endpoint.rawValue,
                                        "state": ts.label, "problem": ts.problem ?? NSNull()]
                if let r {
                    o["digest"] = r.digest ?? NSNull()
                    o["kv_file"] = r.kvFile ?? NSNull()
                    o["prompt_tokens"] = r.promptTokens ?? NSNull()
                    o["processed_tokens"] = r.processedTokens ?? NSNull()
                    o["cached_tokens"] = r.cachedTokens ?? NSNull()
                    o["mode"] = r.mode?.rawValue ?? NSNull()
                    o["warm_ms"] = r.warmMS.map { Int($0.rounded()) } ?? NSNull()
                    o["warmed_at"] = r.warmedAt.map { iso.string(from: $0) } ?? NSNull()
                    o["last_error"] = r.lastError ?? NSNull()
                    o["backend_match"] = fp.map { r.fingerprint == $0.digest ? "same" : "changed" } ?? "unknown"
                }
                templates.append(o)
            }
            var daemon: [String: Any] = ["running": holder != .none]
            if case .process(let pid) = holder { daemon["pid"] = pid.map { Int($0) } ?? NSNull() }
            let out: [String: Any] = [
                "daemon": daemon,
                "backend": ["url": c.backend.address.description, "healthy": health == nil,
                            "error": health?.description ?? NSNull(), "fingerprint": fp?.digest ?? NSNull(),
                            "build": fp?.build ?? NSNull()] as [String: Any],
                "state_file": store.path,
                "restore_ineffective": fp.map { state.restoreIneffective.contains($0.digest) } ?? false,
                "idle_slots_cleared": fp.map { (state.idleSlotsCleared ?? []).contains($0.digest) } ?? false,
                "keep_warm_restores_per_minute": c.keepWarm.restoresPerMinute,
                "templates": templates,
            ]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            if exit != 0 { throw ExitCode(exit) }
            return
        }
        switch holder {
        case .none: print("daemon   NOT RUNNING on state_dir \(c.stateDir)")
        case .process(let pid): print("daemon   running\(pid.map { " (pid \($0))" } ?? "")")
        }
        print("backend  \(c.backend.address)  \(health == nil ? "healthy" : "UNAVAILABLE: \(health!)")\(fp.map { "  build \($0.build)" } ?? "")")
        if let fp, state.restoreIneffective.contains(fp.digest) {
            print("note     slot restores do not take on this backend (SWA model without --swa-full?): templates prefill")
        }
        if let fp, (state.idleSlotsCleared ?? []).contains(fp.digest) {
            let verdict = SlotPolicyGuard.verdict(restoresPerMinute: c.keepWarm.restoresPerMinute)
            print("note     llama-server clears idle slots after every request: \(verdict.status); \(SlotPolicyGuard.hint)")
        }
        if let stateNote { print("state    \(stateNote)") }
        let rows: [[String]] = [["TEMPLATE", "STATE", "MODE", "TOKENS", "CACHED", "WARM_MS", "WARMED_AT", "KV_FILE", "ERROR"]]
            + c.templates.map { t in
                let r = state.templates[t.name]
                return [t.name, states[t.name]!.label, r?.mode?.rawValue ?? "-", r?.promptTokens.map(String.init) ?? "-",
                        r?.cachedTokens.map(String.init) ?? "-", r?.warmMS.map { String(Int($0)) } ?? "-",
                        r?.warmedAt.map { iso.string(from: $0) } ?? "never", r?.kvFile ?? "-",
                        states[t.name]!.problem ?? ""]
            }
        let widths = (0..<rows[0].count).map { i in rows.map { $0[i].count }.max() ?? 0 }
        for row in rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        if exit != 0 { throw ExitCode(exit) }
    }

    /// `--ready`: one line and exit 0 (ready) or 1 (not ready).
    private func readiness(_ c: KVWarmConfig, state: WarmState, stateNote: String?) throws {
        let loader = SnapshotLoader(includeRoots: c.includeRoots, maxBytes: c.maxTemplateBytes)
        let notWarm = c.templates.filter { TemplateState.of($0, record: state.templates[$0.name], loader: loader).label != "warm" }
        let why: String?
        if InstanceLock.holder(directory: c.stateDir) == .none {
            why = "no kvwarm runs on state_dir \(c.stateDir)"
        } else if !InstanceLock.isReady(directory: c.stateDir) {
            why = "kvwarm runs but its startup warm has not finished"
        } else if let stateNote, !c.templates.isEmpty, state.templates.isEmpty {
            why = stateNote
        } else if !notWarm.isEmpty {
            why = "not warm: \(notWarm.map(\.name).joined(separator: ", "))"
        } else {
            why = nil
        }
        print(why.map { "not ready: \($0)" } ?? "ready: \(Counted.of(c.templates.count, "template")) warm")
        throw ExitCode(why == nil ? 0 : 1)
    }
}

/// One template's state as `status` reports it.
struct TemplateState {
    /// `warm`, `pending` (the files changed since the warm), `failed` or `never`.
    var label: String
    var problem: String?

    static func of(_ spec: TemplateSpec, record: WarmRecord?, loader: SnapshotLoader) -> TemplateState {
        let current: String
        switch loader.load(spec) {
        case .failure(let p): return TemplateState(label: "failed", problem: p.description)
        case .success(let s): current = s.digest
        }
        if let e = record?.lastError { return TemplateState(label: "failed", problem: e) }
        guard let warmed = record?.digest else { return TemplateState(label: "never", problem: nil) }
        if warmed != current {
            return TemplateState(label: "pending", problem: "the files changed since the last warm")
        }
        return TemplateState(label: "warm", problem: nil)
    }
}
