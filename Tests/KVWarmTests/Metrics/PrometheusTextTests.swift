import Foundation
@testable import KVWarm
import Testing

@Suite struct PrometheusTextTests {
    static func snapshot() -> MetricsSnapshot {
        var a = MetricsSnapshot.Template(name: "alpha", backend: "default", state: .warm)
        a.warms = [.init(mode: "prefill", outcome: "ok"): 1, .init(mode: "restore", outcome: "ok"): 3]
        a.warmSeconds = 2.5
        a.keptWarm = 7
        a.lastMode = "restore"
        a.lastDurationMS = 37
        a.lastPromptTokens = 670
        a.lastCachedTokens = 669
        a.lastWarmedAt = Date(timeIntervalSince1970: 1_700_000_000)
        let b = MetricsSnapshot.Template(name: "we\"ird\\na\nme", backend: "default", state: .never)
        return MetricsSnapshot(templates: [b, a], writtenAt: Date(timeIntervalSince1970: 1_700_000_100.5))
    }

    @Test func everyFamilyOnceWithItsSamples() {
        let text = PrometheusText.render(Self.snapshot())
        let lines = text.split(separator: "\n").map(String.init)
        for family in ["kvwarm_warms_total", "kvwarm_warm_seconds_total", "kvwarm_kept_warm_total", "kvwarm_template_state",
                       "kvwarm_last_warm_duration_seconds", "kvwarm_last_warm_prompt_tokens", "kvwarm_last_warm_cached_tokens",
                       "kvwarm_last_warm_timestamp_seconds", "kvwarm_metrics_written_timestamp_seconds"] {
            #expect(lines.filter { $0.hasPrefix("# TYPE \(family) ") }.count == 1, "\(family)")
        }
        #expect(lines.contains(#"kvwarm_warms_total{backend="default",model="",template="alpha",mode="restore",outcome="ok"} 3"#))
        #expect(lines.contains(#"kvwarm_warms_total{backend="default",model="",template="alpha",mode="prefill",outcome="failed"} 0"#))
        #expect(lines.contains(#"kvwarm_warm_seconds_total{backend="default",model="",template="alpha"} 2.500"#))
        #expect(lines.contains(#"kvwarm_kept_warm_total{backend="default",model="",template="alpha"} 7"#))
        #expect(lines.contains(#"kvwarm_template_state{backend="default",model="",template="alpha",state="warm"} 1"#))
        #expect(lines.contains(#"kvwarm_template_state{backend="default",model="",template="alpha",state="failed"} 0"#))
        #expect(lines.contains(#"kvwarm_last_warm_duration_seconds{backend="default",model="",template="alpha",mode="restore"} 0.037"#))
        #expect(lines.contains(#"kvwarm_last_warm_cached_tokens{backend="default",model="",template="alpha"} 669"#))
        #expect(lines.contains(#"kvwarm_last_warm_timestamp_seconds{backend="default",model="",template="alpha"} 1700000000"#))
        #expect(lines.contains("kvwarm_metrics_written_timestamp_seconds 1700000100.500"))
        // a template never warmed has no last-warm samples, only counters and its state
        #expect(!lines.contains { $0.hasPrefix("kvwarm_last_warm_prompt_tokens") && $0.contains("never") })
    }

    @Test func labelValuesAreEscapedAndTheOrderIsFixed() {
        let text = PrometheusText.render(Self.snapshot())
        #expect(text.contains(#"template="we\"ird\\na\nme""#), "quote, backslash and newline escaped")
        #expect(!text.contains("\nme\""), "no raw newline inside a label")
        // alpha sorts before the other name whatever the input order
        let first = text.split(separator: "\n").first { $0.hasPrefix("kvwarm_kept_warm_total{") }
        #expect(first?.contains(#"template="alpha""#) == true)
        var swapped = Self.snapshot()
        swapped.templates.reverse()
        #expect(PrometheusText.render(swapped) == text)
        #expect(text.hasSuffix("\n"))
    }
}
