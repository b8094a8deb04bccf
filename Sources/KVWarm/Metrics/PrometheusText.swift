
/// Renders a ``MetricsSnapshot`` in the Prometheus text exposition format (version 0.0.4), as
/// node_exporter's textfile collector reads it: `# HELP` and `# TYPE` once per family, one
/// sample per line, label values escaped (`\\`, `"`, newline), families and samples in a fixed
/// order so the same snapshot always gives the same bytes.
public enum PrometheusText {
    public static func render(_ s: MetricsSnapshot) -> String {
        var out = ""
        let ts = s.templates.sorted { ($0.backend, $0.model, $0.name) < ($1.backend, $1.model, $1.name) }
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(number(value))\n" }
        }
        func labels(_ t: MetricsSnapshot.Template, _ extra: [(String, String)] = []) -> String {
            let all = [("backend", t.backend), ("model", t.model), ("template", t.name)] + extra
            return "{" + all.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        let counts = ["prefill", "restore"].flatMap { m in ["ok", "failed"].map { MetricsSnapshot.WarmCount(mode: m, outcome: $0) } }
        family("kvwarm_warms_total", "counter", "Warms since kvwarm started, by how (mode) and how they ended (outcome).",
               ts.flatMap { t in counts.map { c in (labels(t, [("mode", c.mode), ("outcome", c.outcome)]), Double(t.warms[c] ?? 0)) } })
        family("kvwarm_warm_seconds_total", "counter", "Seconds spent warming since kvwarm started.",
               ts.map { (labels($0), $0.warmSeconds) })
        family("kvwarm_kept_warm_total", "counter", "Times kvwarm put a template back after requests took it, since it started.",
               ts.map { (labels($0), Double($0.keptWarm)) })
        family("kvwarm_template_state", "gauge", "1 for the template's current state, 0 for the others.",
               ts.flatMap { t in MetricsSnapshot.State.allCases.map { (labels(t, [("state", $0.rawValue)]), $0 == t.state ? 1 : 0) } })
        let last = ts.filter { $0.lastWarmedAt != nil }
        family("kvwarm_last_warm_duration_seconds", "gauge", "Duration of the last good warm.",
               last.compactMap { t in t.lastDurationMS.map { (labels(t, [("mode", t.lastMode ?? "")]), $0 / 1000) } })
        family("kvwarm_last_warm_prompt_tokens", "gauge", "Tokens in the prompt of the last good warm.",
               last.compactMap { t in t.lastPromptTokens.map { (labels(t), Double($0)) } })
        family("kvwarm_last_warm_cached_tokens", "gauge", "Prompt tokens the server reused in the last good warm (timings.cache_n).",
               last.compactMap { t in t.lastCachedTokens.map { (labels(t), Double($0)) } })
        family("kvwarm_last_warm_timestamp_seconds", "gauge", "Unix time of the last good warm.",
               last.map { (labels($0), $0.lastWarmedAt!.timeIntervalSince1970) })
        family("kvwarm_metrics_written_timestamp_seconds", "gauge", "Unix time this file was written.",
               [("", s.writtenAt.timeIntervalSince1970)])
        return out
    }

    static func escape(_ v: String) -> String {
        var r = ""
        for c in v {
            switch c {
            case "\\": r += "\\\\"
            case "\"": r += "\\\""
            case "\n": r += "\\n"
            default: r.append(c)
            }
        }
        return r
    }

    /// Whole numbers without a fraction, others with up to millisecond precision.
    static func number(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return fixed3(v)
    }

    /// `v` with exactly three decimals, rounded half away from zero (what `%.3f` prints for the
    /// values kvwarm exports).
    static func fixed3(_ v: Double) -> String {
        let scaled = (v * 1000).rounded()
        guard v.isFinite, abs(scaled) < 9e15 else { return v.description }
        let n = Int64(scaled)
        let whole = String(abs(n) / 1000)
        let frac = String(abs(n) % 1000)
        return (n < 0 ? "-" : "") + whole + "." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}
