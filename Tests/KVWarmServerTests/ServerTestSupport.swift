import Foundation
import KVWarmTestSupport

/// Deterministic template text of roughly `sentences × 15` tokens on a topic.
func templateText(topic: String, sentences: Int, placeholder: Bool = true) -> String {
    let verbs = ["check", "review", "verify", "inspect", "question", "document", "measure", "compare"]
    var s = "You are an expert assistant for \(topic). Follow these rules carefully.\n"
    for i in 0..<sentences {
        s += "Rule \(i + 1): \(verbs[i % verbs.count]) every \(topic) detail numbered \(i * 7 % 101) and explain the reason.\n"
    }
    s += "\nAnswer the question below.\n\n"
    if placeholder { s += "<{message}>" }
    return s
}

/// The client-side content for a template with the user's question in place of `<{message}>`.
func filled(_ template: String, _ question: String) -> String {
    template.replacingOccurrences(of: "<{message}>", with: question)
}

/// A scratch area for one server test: templates, slots, state, config.
struct Workspace {
    let dir: TemporaryDirectory
    var templates: String { dir.file("templates") }
    var slots: String { dir.file("slots") }
    var state: String { dir.file("state") }
    var config: String { dir.file("config.json") }

    init() throws {
        dir = try TemporaryDirectory("kvwarm-srv")
        for d in [templates, slots, state] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
    }

    func writeConfig(backend: String, backendExtra: [String: Any] = [:], templates: [String: Any],
                     extra: [String: Any] = [:]) throws {
        var backendObj: [String: Any] = ["url": backend, "slot_save_dir": slots, "timeout_seconds": 300]
        backendObj.merge(backendExtra) { $1 }
        var o: [String: Any] = ["backend": backendObj, "state_dir": state, "templates": templates,
                                "debounce_ms": 100, "startup": ["backend_wait_seconds": 60]]
        o.merge(extra) { $1 }
        try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: config))
    }

    func startKVWarm(_ extraArgs: [String] = []) throws -> KVWarmProcess {
        try KVWarmProcess(arguments: ["run", "--config", config, "--log-format", "json", "--log-level", "debug"] + extraArgs,
                          directory: dir.path)
    }
}

extension Dictionary where Key == String, Value == String {
    func int(_ k: String) -> Int { Int(self[k] ?? "") ?? -1 }
}
