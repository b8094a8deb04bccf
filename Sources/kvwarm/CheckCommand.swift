import ArgumentParser
import KVWarm

/// `kvwarm check`: validate a config and print the resolved templates.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file and print the resolved templates (exit 78 when invalid).")

    @OptionGroup var config: ConfigOptions

    func run() async throws {
        let c = try config.load()
        for (name, b) in c.backends.sorted(by: { $0.key < $1.key }) {
            var view = c
            view.backend = b
            do { _ = try KVWarmDaemon.readAPIKey(view) } catch {
                printError("kvwarm: invalid configuration: \(error) (backend \(name))")
                throw ExitCode(SysExit.config.rawValue)
            }
        }
        for n in c.notices { print("notice: \(n)") }
        print("config:        \(c.sourcePath)")
        let several = c.backends.count > 1 || c.backends[KVWarmConfig.defaultBackendName] == nil
        for (name, b) in c.backends.sorted(by: { $0.key < $1.key }) {
            print("backend:       \(several ? "\(name): " : "")\(b.address)")
            print("api key:       \(b.apiKeyFile.map { "from \($0)" } ?? "none")")
            print("slot_save_dir: \(b.slotSaveDir ?? "(not set: KV files are not pruned by kvwarm)")")
        }
        let models = c.pipelines.compactMap { k in k.model.map { "\(k.backend)/\($0)" } }
        if !models.isEmpty { print("router models: \(models.joined(separator: ", ")) (never loaded by kvwarm)") }
        print("state_dir:     \(c.stateDir)")
        print("debounce:      \(Int(c.debounce.milliseconds)) ms (max wait \(Int(c.maxWait.milliseconds)) ms)")
        print("include_roots: \(c.includeRoots.joined(separator: ", "))")
        let k = c.keepWarm
        print("keep_warm:     \(k.restoresPerMinute == 0 ? "off" : "at most \(k.restoresPerMinute) restores per template per minute; slots read every \(Int(k.activeCheckInterval.milliseconds)) ms under traffic")")
        // what the daemon last found out about the backend (check itself does not contact it)
        for key in c.pipelines {
            guard let state = StateStore(directory: c.stateDir, fileName: key.stateFileName).peek(),
                  let fp = state.backend else { continue }
            let on = several || key.model != nil ? " (\(key))" : ""
            if state.restoreIneffective.contains(fp.digest) {
                print("note:          slot restores did not take on this backend\(on) (SWA model without --swa-full?): templates prefill")
            }
            if (state.idleSlotsCleared ?? []).contains(fp.digest) {
                let verdict = SlotPolicyGuard.verdict(restoresPerMinute: k.restoresPerMinute)
                print("note:          llama-server\(on) (\(fp.totalSlots) slots) clears idle slots after every request: \(verdict.status); \(SlotPolicyGuard.hint)")
            }
        }
        print("templates:     \(c.templates.count)")
        let loader = SnapshotLoader(includeRoots: c.includeRoots, maxBytes: c.maxTemplateBytes)
        for t in c.templates {
            let state: String
            switch loader.load(t) {
            case .success(let s): state = "ok, \(s.text.utf8.count) bytes, \(Counted.of(s.includes.count, "include")), digest \(s.digest.prefix(12))"
            case .failure(let p): state = "PROBLEM: \(p)"
            }
            let kind = t.isRequest ? "request" : "\(t.endpoint.rawValue), \(t.role.rawValue)"
            let on = several || t.model != nil ? "  on \(t.pipeline)" : ""
            print("  \(t.name)  \(t.path)  [\(kind)]\(on)  \(state)")
        }
    }
}
