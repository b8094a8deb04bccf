import ArgumentParser
import FoundationEssentials
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

    /// What status found for one pipeline.
    struct Section {
        var key: PipelineKey
        var view: KVWarmConfig
        var store: StateStore
        var state: WarmState
        var stateNote: String?
        var health: BackendError?
        var fp: BackendFingerprint?
        /// The router reports the pipeline's model not loaded: its templates wait for it.
        var unloaded: Bool { if case .modelUnloaded = health { true } else { false } }
    }

    static func section(_ c: KVWarmConfig, _ key: PipelineKey, contact: Bool) async -> Section {
        let view = c.view(for: key)
        let store = StateStore(directory: c.stateDir, fileName: key.stateFileName)
        var section = Section(key: key, view: view, store: store, state: WarmState())
        switch store.load() {
        case .loaded(let s): section.state = s
        case .absent: section.stateNote = "no state file yet at \(store.path)"
        case .discarded(let r, _): section.stateNote = "state file unreadable: \(r)"
        }
        guard contact else { return section }
        let apiKey = try? KVWarmDaemon.readAPIKey(view)
        let client = LlamaClient(transport: CurlTransport(address: view.backend.address, apiKey: apiKey ?? nil),
                                 timeout: .seconds(5), model: key.model)
        section.health = await client.health()
        section.fp = try? await BackendFingerprint.read(from: client, kvTag: view.backend.kvTag)
        return section
    }

    func run() async throws {
        let c = try config.load(keyOptional: true)
        var sections: [Section] = []
        for key in c.pipelines { sections.append(await Self.section(c, key, contact: !ready)) }
        if ready { try readiness(c, sections) }
        let holder = InstanceLock.holder(directory: c.stateDir)
        let loader = SnapshotLoader(includeRoots: c.includeRoots, maxBytes: c.maxTemplateBytes)
        var states: [String: TemplateState] = [:]
        for sec in sections {
            for t in sec.view.templates {
                states[t.name] = sec.unloaded ? TemplateState(label: "unloaded", problem: "router model \(t.model ?? "") is not loaded")
                    : TemplateState.of(t, record: sec.state.templates[t.name], loader: loader)
            }
        }
        // a model the router has unloaded is not a fault: its templates are restored when it loads
        let allWarm = sections.allSatisfy { $0.health == nil || $0.unloaded }
            && states.values.allSatisfy { $0.label == "warm" || $0.label == "unloaded" }
        let exit: Int32 = holder == .none ? 3 : (allWarm ? 0 : 1)

        if json {
            var templates: [[String: Any]] = []
            var backends: [[String: Any]] = []
            for sec in sections {
                let fp = sec.fp
                backends.append([
                    "name": sec.key.backend, "model": sec.key.model ?? JSONNull(), "url": sec.view.backend.address.description,
                    "healthy": sec.health == nil, "model_unloaded": sec.unloaded, "error": sec.health?.description ?? JSONNull(),
                    "fingerprint": fp?.digest ?? JSONNull(), "build": fp?.build ?? JSONNull(), "state_file": sec.store.path,
                    "restore_ineffective": fp.map { sec.state.restoreIneffective.contains($0.digest) } ?? false,
                    "idle_slots_cleared": fp.map { (sec.state.idleSlotsCleared ?? []).contains($0.digest) } ?? false,
                ] as [String: Any])
                for t in sec.view.templates {
                    let r = sec.state.templates[t.name]
                    let ts = states[t.name]!
                    var o: [String: Any] = ["name": t.name, "path": t.path, "endpoint": t.endpoint.rawValue,
                                            "backend": t.backend, "model": t.model ?? JSONNull(),
                                            "state": ts.label, "problem": ts.problem ?? JSONNull()]
                    if let r {
                        o["digest"] = r.digest ?? JSONNull()
                        o["kv_file"] = r.kvFile ?? JSONNull()
                        o["prompt_tokens"] = r.promptTokens ?? JSONNull()
                        o["processed_tokens"] = r.processedTokens ?? JSONNull()
                        o["cached_tokens"] = r.cachedTokens ?? JSONNull()
                        o["mode"] = r.mode?.rawValue ?? JSONNull()
                        o["warm_ms"] = r.warmMS.map { Int($0.rounded()) } ?? JSONNull()
                        o["warmed_at"] = r.warmedAt.map { $0.formatted(.iso8601) } ?? JSONNull()
                        o["last_error"] = r.lastError ?? JSONNull()
                        o["backend_match"] = fp.map { r.fingerprint == $0.digest ? "same" : "changed" } ?? "unknown"
                    }
                    templates.append(o)
                }
            }
            var daemon: [String: Any] = ["running": holder != .none]
            if case .process(let pid) = holder { daemon["pid"] = pid.map { Int($0) } ?? JSONNull() }
            // the first pipeline's backend also at the top level, as before there were several
            let first = backends[0]
            let out: [String: Any] = [
                "daemon": daemon,
                "backend": ["url": first["url"]!, "healthy": first["healthy"]!, "error": first["error"]!,
                            "fingerprint": first["fingerprint"]!, "build": first["build"]!] as [String: Any],
                "backends": backends,
                "state_file": first["state_file"]!,
                "restore_ineffective": first["restore_ineffective"]!,
                "idle_slots_cleared": first["idle_slots_cleared"]!,
                "keep_warm_restores_per_minute": c.keepWarm.restoresPerMinute,
                "templates": templates,
            ]
            guard let data = AnyJSON.serialize(out, sortedKeys: true, pretty: true) else {
                throw ValidationError("cannot encode the status as JSON")
            }
            print(String(decoding: data, as: UTF8.self))
            if exit != 0 { throw ExitCode(exit) }
            return
        }
        switch holder {
        case .none: print("daemon   NOT RUNNING on state_dir \(c.stateDir)")
        case .process(let pid): print("daemon   running\(pid.map { " (pid \($0))" } ?? "")")
        }
        for n in c.notices { print("note     \(n)") }
        let named = sections.count > 1 || !sections[0].key.isDefault
        for sec in sections {
            let label = named ? "backend  \(sec.key)  " : "backend  "
            let health = sec.unloaded ? "model not loaded (its templates are restored when the router loads it)"
                : sec.health == nil ? "healthy" : "UNAVAILABLE: \(sec.health!)"
            print("\(label)\(sec.view.backend.address)  \(health)\(sec.fp.map { "  build \($0.build)" } ?? "")")
            if let fp = sec.fp, sec.state.restoreIneffective.contains(fp.digest) {
                print("note     slot restores do not take on this backend (SWA model without --swa-full?): templates prefill")
            }
            if let fp = sec.fp, (sec.state.idleSlotsCleared ?? []).contains(fp.digest) {
                let verdict = SlotPolicyGuard.verdict(restoresPerMinute: c.keepWarm.restoresPerMinute)
                print("note     llama-server clears idle slots after every request: \(verdict.status); \(SlotPolicyGuard.hint)")
            }
            if let note = sec.stateNote { print("state    \(note)") }
        }
        let header = ["TEMPLATE"] + (named ? ["BACKEND"] : []) + ["STATE", "MODE", "TOKENS", "CACHED", "WARM_MS", "WARMED_AT", "KV_FILE", "ERROR"]
        var rows: [[String]] = [header]
        for sec in sections {
            for t in sec.view.templates {
                let r = sec.state.templates[t.name]
                var row: [String] = [t.name]
                if named { row.append(sec.key.description) }
                let st = states[t.name]!
                row.append(st.label)
                row.append(r?.mode?.rawValue ?? "-")
                row.append(r?.promptTokens.map(String.init) ?? "-")
                row.append(r?.cachedTokens.map(String.init) ?? "-")
                row.append(r?.warmMS.map { String(Int($0)) } ?? "-")
                row.append(r?.warmedAt.map { $0.formatted(.iso8601) } ?? "never")
                row.append(r?.kvFile ?? "-")
                row.append(st.problem ?? "")
                rows.append(row)
            }
        }
        let widths = (0..<rows[0].count).map { i in rows.map { $0[i].count }.max() ?? 0 }
        for row in rows {
            print(zip(row, widths).map { $0 + String(repeating: " ", count: max(0, $1 - $0.count)) }
                .joined(separator: "  ").trimmingWhiteSpace())
        }
        if exit != 0 { throw ExitCode(exit) }
    }

    /// `--ready`: one line and exit 0 (ready) or 1 (not ready). Templates of a router model the
    /// daemon last saw unloaded do not count.
    private func readiness(_ c: KVWarmConfig, _ sections: [Section]) throws {
        let loader = SnapshotLoader(includeRoots: c.includeRoots, maxBytes: c.maxTemplateBytes)
        var notWarm: [String] = []
        var unloaded = 0
        var why: String?
        for sec in sections {
            if sec.state.modelUnloaded == true { unloaded += sec.view.templates.count; continue }
            if let note = sec.stateNote, !sec.view.templates.isEmpty, sec.state.templates.isEmpty, why == nil { why = note }
            notWarm += sec.view.templates.filter {
                TemplateState.of($0, record: sec.state.templates[$0.name], loader: loader).label != "warm"
            }.map(\.name)
        }
        if InstanceLock.holder(directory: c.stateDir) == .none {
            why = "no kvwarm runs on state_dir \(c.stateDir)"
        } else if !InstanceLock.isReady(directory: c.stateDir) {
            why = "kvwarm runs but its startup warm has not finished"
        } else if why == nil, !notWarm.isEmpty {
            why = "not warm: \(notWarm.joined(separator: ", "))"
        }
        let warm = c.templates.count - unloaded
        let tail = unloaded > 0 ? " (\(unloaded) of an unloaded router model waiting)" : ""
        print(why.map { "not ready: \($0)" } ?? "ready: \(Counted.of(warm, "template")) warm\(tail)")
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
