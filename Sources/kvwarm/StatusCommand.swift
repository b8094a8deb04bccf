import ArgumentParser
import Foundation
import KVWarm

/// `kvwarm status`: the state file and the backend's health.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show each template's last warm (from the state file) and the backend's health.")

    @OptionGroup var config: ConfigOptions
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

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
        let key = try? KVWarmDaemon.readAPIKey(c)
        let client = LlamaClient(transport: CurlTransport(address: c.backend.address, apiKey: key ?? nil),
                                 timeout: .seconds(5))
        let health = await client.health()
        let fp = try? await BackendFingerprint.read(from: client, kvTag: c.backend.kvTag)
        let iso = ISO8601DateFormatter()

        if json {
            var templates: [[String: Any]] = []
            for t in c.templates {
                let r = state.templates[t.name]
                var o: [String: Any] = ["name": t.name, "path": t.path, "endpoint": t.endpoint.rawValue]
                if let r {
                    o["digest"] = r.digest ?? NSNull()
                    o["kv_file"] = r.kvFile ?? NSNull()
                    o["tokens"] = r.promptTokens ?? NSNull()
                    o["mode"] = r.mode?.rawValue ?? NSNull()
                    o["prompt_n"] = r.processedTokens ?? NSNull()
                    o["cache_n"] = r.cachedTokens ?? NSNull()
                    o["warm_ms"] = r.warmMS ?? NSNull()
                    o["warmed_at"] = r.warmedAt.map { iso.string(from: $0) } ?? NSNull()
                    o["last_error"] = r.lastError ?? NSNull()
                    o["current_backend"] = fp.map { r.fingerprint == $0.digest } ?? NSNull()
                }
                templates.append(o)
            }
            let out: [String: Any] = [
                "backend": ["url": c.backend.address.description, "healthy": health == nil,
                            "error": health?.description ?? NSNull(), "fingerprint": fp?.digest ?? NSNull(),
                            "build": fp?.build ?? NSNull()] as [String: Any],
                "state_file": store.path,
                "restore_ineffective": fp.map { state.restoreIneffective.contains($0.digest) } ?? false,
                "templates": templates,
            ]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            if health != nil { throw ExitCode(SysExit.unavailable.rawValue) }
            return
        }
        print("backend  \(c.backend.address)  \(health == nil ? "healthy" : "UNAVAILABLE: \(health!)")\(fp.map { "  build \($0.build)" } ?? "")")
        if let fp, state.restoreIneffective.contains(fp.digest) {
            print("note     slot restores do not take on this backend (SWA model without --swa-full?): templates prefill")
        }
        if let stateNote { print("state    \(stateNote)") }
        let rows: [[String]] = [["TEMPLATE", "MODE", "TOKENS", "CACHED", "WARM_MS", "WARMED_AT", "KV_FILE", "ERROR"]]
            + c.templates.map { t in
                let r = state.templates[t.name]
                return [t.name, r?.mode?.rawValue ?? "-", r?.promptTokens.map(String.init) ?? "-",
                        r?.cachedTokens.map(String.init) ?? "-", r?.warmMS.map { String(Int($0)) } ?? "-",
                        r?.warmedAt.map { iso.string(from: $0) } ?? "never", r?.kvFile ?? "-",
                        r?.lastError ?? ""]
            }
        let widths = (0..<rows[0].count).map { i in rows.map { $0[i].count }.max() ?? 0 }
        for row in rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        if health != nil { throw ExitCode(SysExit.unavailable.rawValue) }
    }
}
