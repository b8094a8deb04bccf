import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// A temp directory with `tpl/` (templates), `inc/`, `slots/` and a readable `key` file.
/// `$T` in config text stands for its path.
struct ConfigSandbox {
    let dir: TemporaryDirectory
    var t: String { dir.path }

    init() throws {
        dir = try TemporaryDirectory("kvcfg")
        try dir.write("tpl/code.txt", "Review: <{message}>")
        try dir.write("inc/x.txt", "x")
        try dir.write("key", "secret\n")
        try FileManager.default.createDirectory(atPath: dir.file("slots"), withIntermediateDirectories: true)
    }

    /// Writes `text` (with `$T` replaced) as `name` and loads it.
    func load(_ text: String, name: String = "config.json",
              environment: [String: String] = [:]) throws(ConfigError) -> KVWarmConfig {
        let path = dir.file(name)
        let body = text.replacingOccurrences(of: "$T", with: t)
        _ = try? dir.write(name, body)
        return try ConfigLoader(environment: environment).load(path: path)
    }

    func error(_ text: String, environment: [String: String] = [:]) -> ConfigError? {
        do {
            _ = try load(text, environment: environment)
            return nil
        } catch { return error }
    }
}

@Suite struct ConfigLoaderTests {
    @Test func fullConfigResolvesEveryKey() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        try box.dir.write("tpl/sys.txt", "You are helpful.")
        let c = try box.load("""
        {
          "backend": {
            "url": "http://127.0.0.1:8080/",
            "api_key_file": "$T/key",
            "slot_save_dir": "$T/slots/",
            "timeout_seconds": 30,
            "kv_tag": "q8-kv",
            "check_interval_seconds": 2.5
          },
          "state_dir": "$T/state",
          "debounce_ms": 200,
          "max_wait_ms": 5000,
          "templates": {
            "code": "$T/tpl/code.txt",
            "sys": {"path": "$T/tpl/../tpl/sys.txt", "endpoint": "completion", "role": "system"}
          },
          "include_roots": ["$T/inc", "$T/tpl"],
          "startup": {"backend_wait_seconds": 30, "on_unavailable": "fail"},
          "max_template_bytes": 1000,
          "watchdog_hang_seconds": 2.5
        }
        """)
        let t = box.t
        #expect(c.backend.address == .http(baseURL: "http://127.0.0.1:8080"))
        #expect(c.backend.apiKeyFile == "\(t)/key")
        #expect(c.backend.slotSaveDir == "\(t)/slots")
        #expect(c.backend.timeout == .seconds(30))
        #expect(c.backend.kvTag == "q8-kv")
        #expect(c.backend.checkInterval == .milliseconds(2500))
        #expect(c.stateDir == "\(t)/state")
        #expect(c.debounce == .milliseconds(200))
        #expect(c.maxWait == .milliseconds(5000))
        #expect(c.templates == [
            TemplateSpec(name: "code", path: "\(t)/tpl/code.txt", endpoint: .chat, role: .user),
            TemplateSpec(name: "sys", path: "\(t)/tpl/sys.txt", endpoint: .completion, role: .system),
        ])
        #expect(c.includeRoots == ["\(t)/inc", "\(t)/tpl"])
        #expect(c.startup.backendWait == .seconds(30))
        #expect(c.startup.onUnavailable == .fail)
        #expect(c.maxTemplateBytes == 1000)
        #expect(c.watchdogHangAfter == .milliseconds(2500))
        #expect(c.sourcePath == box.dir.file("config.json"))
        #expect(c.notices.isEmpty)
        #expect(c.template(named: "sys")?.role == .system)
        #expect(c.template(named: "nope") == nil)
    }

    @Test func minimalConfigGetsTheDefaults() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let c = try box.load("""
        {"backend": {"url": "unix:/run/llama/llama.sock"}, "templates": {"code": "$T/tpl/code.txt"}}
        """)
        #expect(c.backend.address == .unixSocket(path: "/run/llama/llama.sock"))
        #expect(c.backend.apiKeyFile == nil)
        #expect(c.backend.slotSaveDir == nil)
        #expect(c.backend.timeout == .seconds(600))
        #expect(c.watchdogHang == nil)
        #expect(c.watchdogHangAfter == .seconds(1260), "2 × timeout + 60 s")
        #expect(c.backend.kvTag == nil)
        #expect(c.backend.checkInterval == .seconds(5))
        #expect(c.debounce == .milliseconds(150))
        #expect(c.maxWait == .milliseconds(2000))
        #expect(c.startup.backendWait == .seconds(120))
        #expect(c.startup.onUnavailable == .degraded)
        #expect(c.stateDir == "/var/lib/kvwarm")
        #expect(c.maxTemplateBytes == ConfigLoader.defaultMaxTemplateBytes)
        #expect(c.keepWarm == KVWarmConfig.KeepWarm(restoresPerMinute: 30, activeCheckInterval: .milliseconds(250)))
        #expect(c.includeRoots == ["\(box.t)/tpl"], "defaults to the templates' directories")
        #expect(c.templates == [TemplateSpec(name: "code", path: "\(box.t)/tpl/code.txt")])
        #expect(c.templates[0].endpoint == .chat)
        #expect(c.templates[0].role == .user)
    }

    @Test func keepWarmCanBeTunedOrTurnedOff() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let c = try box.load("""
        {"backend": {"url": "http://h:1"}, "templates": {"code": "$T/tpl/code.txt"},
         "keep_warm": {"restores_per_minute": 0, "active_check_ms": 1000}}
        """)
        #expect(c.keepWarm == KVWarmConfig.KeepWarm(restoresPerMinute: 0, activeCheckInterval: .seconds(1)))
    }

    @Test func longDebounceRaisesTheDefaultMaxWait() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let c = try box.load("""
        {"backend": {"url": "http://h:1"}, "debounce_ms": 3000, "templates": {"code": "$T/tpl/code.txt"}}
        """)
        #expect(c.maxWait == .milliseconds(3000))
    }

    @Test func stateDirectoryFromTheEnvironmentWins() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let text = """
        {"backend": {"url": "http://h:1"}, "state_dir": "$T/state", "templates": {"code": "$T/tpl/code.txt"}}
        """
        #expect(try box.load(text, environment: [:]).stateDir == "\(box.t)/state")
        #expect(try box.load(text, environment: ["STATE_DIRECTORY": "/var/lib/kvwarm-a"]).stateDir == "/var/lib/kvwarm-a")
        #expect(try box.load(text, environment: ["STATE_DIRECTORY": "/var/lib/one:/var/lib/two"]).stateDir == "/var/lib/one")
        #expect(try box.load(text, environment: ["STATE_DIRECTORY": ""]).stateDir == "\(box.t)/state")
    }

    @Test func credentialsDirectoryExpandsInApiKeyFile() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let c = try box.load("""
        {"backend": {"url": "http://h:1", "api_key_file": "${CREDENTIALS_DIRECTORY}/key"},
         "templates": {"code": "$T/tpl/code.txt"}}
        """, environment: ["CREDENTIALS_DIRECTORY": box.t])
        #expect(c.backend.apiKeyFile == "\(box.t)/key")
    }

    @Test func configPathPrecedence() {
        #expect(ConfigLoader.configPath(explicit: "/a.json", environment: ["KVWARM_CONFIG": "/b.json"]) == "/a.json")
        #expect(ConfigLoader.configPath(explicit: nil, environment: ["KVWARM_CONFIG": "/b.json"]) == "/b.json")
        #expect(ConfigLoader.configPath(explicit: "", environment: [:]) == "/etc/kvwarm/config.json")
    }

    @Test func missingConfigFileIsAConfigError() {
        do {
            _ = try ConfigLoader(environment: [:]).load(path: "/nonexistent/kvwarm/config.json")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.file == "/nonexistent/kvwarm/config.json")
            #expect(error.message.contains("no such file"))
        }
    }

    @Test func bioproxyConfigLoads() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        try box.dir.write("conf/prompts/code.txt", "Code: <{message}>")
        try box.dir.write("conf/prompts/chat.txt", "Chat: <{message}>")
        let c = try box.load("""
        {
          "backend_url": "http://127.0.0.1:8081",
          "prefixes": {"@code": "prompts/code.txt", "@chat": "./prompts/../prompts/chat.txt"},
          "warmup_check_interval": 30,
          "proxy_port": 8088
        }
        """, name: "conf/config.json", environment: ["STATE_DIRECTORY": "/var/lib/kvwarm-bio"])
        #expect(c.backend.address == .http(baseURL: "http://127.0.0.1:8081"))
        #expect(c.templates.map(\.name) == ["code", "chat"])
        #expect(c.templates.map(\.path) == ["\(box.t)/conf/prompts/code.txt", "\(box.t)/conf/prompts/chat.txt"])
        #expect(c.includeRoots == ["\(box.t)/conf/prompts"])
        #expect(c.stateDir == "/var/lib/kvwarm-bio")
        #expect(c.debounce == .milliseconds(150))
        #expect(c.maxWait == .milliseconds(2000))
        #expect(c.notices.contains { $0.contains("warmup_check_interval") })
        #expect(c.notices.contains { $0.contains("proxy_port") })
    }

    @Test func bioproxyConfigWithoutPollIntervalHasNoPollNotice() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        try box.dir.write("prompts/a.txt", "A")
        let c = try box.load("""
        {"prefixes": {"@a": "prompts/a.txt"}}
        """)
        #expect(c.backend.address == .http(baseURL: "http://localhost:8081"))
        #expect(c.stateDir == "/var/lib/kvwarm")
        #expect(c.notices.isEmpty)
        #expect(c.templates == [TemplateSpec(name: "a", path: "\(box.t)/prompts/a.txt")])
    }

    // MARK: - bad configs

    struct Bad: CustomTestStringConvertible, Sendable {
        var label: String
        var text: String
        var key: String?
        var line: Int?
        var environment: [String: String] = [:]
        var testDescription: String { label }
    }

    static let backend = "\"backend\": {\"url\": \"http://127.0.0.1:8080\"}"
    static let templates = "\"templates\": {\"code\": \"$T/tpl/code.txt\"}"

    static let badConfigs: [Bad] = [
        Bad(label: "syntax: trailing comma", text: "{\n  \(backend),\n  \(templates),\n}", key: nil, line: 4),
        Bad(label: "syntax: missing colon", text: "{\n  \(backend),\n  \"templates\" {}\n}", key: nil, line: 3),
        Bad(label: "syntax: duplicate key", text: "{\n  \(backend),\n  \(templates),\n  \"debounce_ms\": 1,\n  \"debounce_ms\": 2\n}",
            key: nil, line: 5),
        Bad(label: "not an object", text: "[\n1\n]", key: nil, line: 1),
        Bad(label: "url wrong type", text: "{\n  \"backend\": {\n    \"url\": 8080\n  },\n  \(templates)\n}",
            key: "backend.url", line: 3),
        Bad(label: "backend wrong type", text: "{\n  \"backend\": \"http://h:1\",\n  \(templates)\n}", key: "backend", line: 2),
        Bad(label: "unknown top-level key", text: "{\n  \(backend),\n  \(templates),\n  \"debounce\": 100\n}",
            key: "debounce", line: 4),
        Bad(label: "unknown backend key", text: "{\n  \"backend\": {\"url\": \"http://h:1\",\n  \"api_key\": \"x\"},\n  \(templates)\n}",
            key: "backend.api_key", line: 3),
        Bad(label: "unknown startup key", text: "{\n  \(backend),\n  \(templates),\n  \"startup\": {\"wait\": 1}\n}",
            key: "startup.wait", line: 4),
        Bad(label: "unknown template key", text: "{\n  \(backend),\n  \"templates\": {\"code\": {\"path\": \"$T/tpl/code.txt\", \"mode\": \"x\"}}\n}",
            key: "templates.code.mode", line: 3),
        Bad(label: "unknown keep_warm key", text: "{\n  \(backend),\n  \(templates),\n  \"keep_warm\": {\"restores\": 1}\n}",
            key: "keep_warm.restores", line: 4),
        Bad(label: "keep_warm budget out of range",
            text: "{\n  \(backend),\n  \(templates),\n  \"keep_warm\": {\"restores_per_minute\": 601}\n}",
            key: "keep_warm.restores_per_minute", line: 4),
        Bad(label: "keep_warm check too fast",
            text: "{\n  \(backend),\n  \(templates),\n  \"keep_warm\": {\"active_check_ms\": 10}\n}",
            key: "keep_warm.active_check_ms", line: 4),
        Bad(label: "missing backend", text: "{\n  \(templates)\n}", key: "backend"),
        Bad(label: "missing url", text: "{\n  \"backend\": {},\n  \(templates)\n}", key: "backend.url"),
        Bad(label: "missing templates", text: "{\n  \(backend)\n}", key: "templates"),
        Bad(label: "empty templates", text: "{\n  \(backend),\n  \"templates\": {}\n}", key: "templates", line: 3),
        Bad(label: "templates as array", text: "{\n  \(backend),\n  \"templates\": [\"$T/tpl/code.txt\"]\n}", key: "templates", line: 3),
        Bad(label: "names collide as file names",
            text: "{\n  \(backend),\n  \"templates\": {\n    \"a b\": \"$T/tpl/code.txt\",\n    \"a_b\": \"$T/tpl/code.txt\"\n  }\n}",
            key: "templates.a_b", line: 5),
        Bad(label: "relative template path", text: "{\n  \(backend),\n  \"templates\": {\"code\": \"tpl/code.txt\"}\n}",
            key: "templates.code", line: 3),
        Bad(label: "relative template path (object)", text: "{\n  \(backend),\n  \"templates\": {\"code\": {\"path\": \"code.txt\"}}\n}",
            key: "templates.code.path", line: 3),
        Bad(label: "template object without path", text: "{\n  \(backend),\n  \"templates\": {\"code\": {\"role\": \"user\"}}\n}",
            key: "templates.code.path", line: 3),
        Bad(label: "template as number", text: "{\n  \(backend),\n  \"templates\": {\"code\": 1}\n}", key: "templates.code", line: 3),
        Bad(label: "missing template directory", text: "{\n  \(backend),\n  \"templates\": {\"code\": \"$T/nope/code.txt\"}\n}",
            key: "templates.code", line: 3),
        Bad(label: "empty template name", text: "{\n  \(backend),\n  \"templates\": {\"\": \"$T/tpl/code.txt\"}\n}",
            key: "templates.", line: 3),
        Bad(label: "control character in name", text: "{\n  \(backend),\n  \"templates\": {\"a\\nb\": \"$T/tpl/code.txt\"}\n}",
            key: "templates.a\nb", line: 3),
        Bad(label: "tab in name", text: "{\n  \(backend),\n  \"templates\": {\"a\\tb\": \"$T/tpl/code.txt\"}\n}",
            key: "templates.a\tb", line: 3),
        Bad(label: "unreadable api_key_file", text: "{\n  \"backend\": {\"url\": \"http://h:1\",\n    \"api_key_file\": \"$T/no-key\"},\n  \(templates)\n}",
            key: "backend.api_key_file", line: 3),
        Bad(label: "relative api_key_file", text: "{\n  \"backend\": {\"url\": \"http://h:1\", \"api_key_file\": \"key\"},\n  \(templates)\n}",
            key: "backend.api_key_file", line: 2),
        Bad(label: "credentials directory unset", text: "{\n  \"backend\": {\"url\": \"http://h:1\", \"api_key_file\": \"${CREDENTIALS_DIRECTORY}/key\"},\n  \(templates)\n}",
            key: "backend.api_key_file", line: 2),
        Bad(label: "url ftp://x", text: "{\n  \"backend\": {\"url\": \"ftp://x\"},\n  \(templates)\n}", key: "backend.url", line: 2),
        Bad(label: "url http://", text: "{\n  \"backend\": {\"url\": \"http://\"},\n  \(templates)\n}", key: "backend.url", line: 2),
        Bad(label: "url unix:relative", text: "{\n  \"backend\": {\"url\": \"unix:relative.sock\"},\n  \(templates)\n}", key: "backend.url", line: 2),
        Bad(label: "url with query", text: "{\n  \"backend\": {\"url\": \"http://h:1/?a=b\"},\n  \(templates)\n}", key: "backend.url", line: 2),
        Bad(label: "url empty", text: "{\n  \"backend\": {\"url\": \"\"},\n  \(templates)\n}", key: "backend.url", line: 2),
        Bad(label: "unix socket path too long",
            text: "{\n  \"backend\": {\"url\": \"unix:/\(String(repeating: "s", count: 120))\"},\n  \(templates)\n}",
            key: "backend.url", line: 2),
        Bad(label: "negative debounce", text: "{\n  \(backend),\n  \(templates),\n  \"debounce_ms\": -1\n}", key: "debounce_ms", line: 4),
        Bad(label: "absurd debounce", text: "{\n  \(backend),\n  \(templates),\n  \"debounce_ms\": 1e12\n}", key: "debounce_ms", line: 4),
        Bad(label: "fractional debounce", text: "{\n  \(backend),\n  \(templates),\n  \"debounce_ms\": 1.5\n}", key: "debounce_ms", line: 4),
        Bad(label: "debounce as string", text: "{\n  \(backend),\n  \(templates),\n  \"debounce_ms\": \"150\"\n}", key: "debounce_ms", line: 4),
        Bad(label: "max_wait below debounce", text: "{\n  \(backend),\n  \(templates),\n  \"debounce_ms\": 500,\n  \"max_wait_ms\": 100\n}",
            key: "max_wait_ms", line: 5),
        Bad(label: "negative max_wait", text: "{\n  \(backend),\n  \(templates),\n  \"max_wait_ms\": -5\n}", key: "max_wait_ms", line: 4),
        Bad(label: "zero timeout", text: "{\n  \"backend\": {\"url\": \"http://h:1\",\n    \"timeout_seconds\": 0},\n  \(templates)\n}",
            key: "backend.timeout_seconds", line: 3),
        Bad(label: "absurd timeout", text: "{\n  \"backend\": {\"url\": \"http://h:1\",\n    \"timeout_seconds\": 1e9},\n  \(templates)\n}",
            key: "backend.timeout_seconds", line: 3),
        Bad(label: "tiny check interval", text: "{\n  \"backend\": {\"url\": \"http://h:1\",\n    \"check_interval_seconds\": 0.01},\n  \(templates)\n}",
            key: "backend.check_interval_seconds", line: 3),
        Bad(label: "negative backend wait", text: "{\n  \(backend),\n  \(templates),\n  \"startup\": {\n    \"backend_wait_seconds\": -1}\n}",
            key: "startup.backend_wait_seconds", line: 5),
        Bad(label: "zero watchdog hang", text: "{\n  \(backend),\n  \(templates),\n  \"watchdog_hang_seconds\": 0\n}",
            key: "watchdog_hang_seconds", line: 4),
        Bad(label: "bad on_unavailable", text: "{\n  \(backend),\n  \(templates),\n  \"startup\": {\"on_unavailable\": \"crash\"}\n}",
            key: "startup.on_unavailable", line: 4),
        Bad(label: "bad endpoint", text: "{\n  \(backend),\n  \"templates\": {\"code\": {\"path\": \"$T/tpl/code.txt\",\n    \"endpoint\": \"embeddings\"}}\n}",
            key: "templates.code.endpoint", line: 4),
        Bad(label: "bad role", text: "{\n  \(backend),\n  \"templates\": {\"code\": {\"path\": \"$T/tpl/code.txt\",\n    \"role\": \"assistant\"}}\n}",
            key: "templates.code.role", line: 4),
        Bad(label: "role wrong type", text: "{\n  \(backend),\n  \"templates\": {\"code\": {\"path\": \"$T/tpl/code.txt\", \"role\": 1}}\n}",
            key: "templates.code.role", line: 3),
        Bad(label: "relative state_dir", text: "{\n  \(backend),\n  \(templates),\n  \"state_dir\": \"state\"\n}", key: "state_dir", line: 4),
        Bad(label: "slot_save_dir is a file", text: "{\n  \"backend\": {\"url\": \"http://h:1\", \"slot_save_dir\": \"$T/key\"},\n  \(templates)\n}",
            key: "backend.slot_save_dir", line: 2),
        Bad(label: "include_roots not an array", text: "{\n  \(backend),\n  \(templates),\n  \"include_roots\": \"$T/inc\"\n}",
            key: "include_roots", line: 4),
        Bad(label: "include root missing", text: "{\n  \(backend),\n  \(templates),\n  \"include_roots\": [\"$T/inc\", \"$T/gone\"]\n}",
            key: "include_roots[1]", line: 4),
        Bad(label: "zero max_template_bytes", text: "{\n  \(backend),\n  \(templates),\n  \"max_template_bytes\": 0\n}",
            key: "max_template_bytes", line: 4),
        Bad(label: "bioproxy without prefixes", text: "{\n  \"backend_url\": \"http://h:1\"\n}", key: "prefixes"),
        Bad(label: "bioproxy bad backend_url", text: "{\n  \"backend_url\": \"ftp://h\",\n  \"prefixes\": {\"@a\": \"tpl/code.txt\"}\n}",
            key: "backend_url", line: 2),
    ]

    @Test(arguments: badConfigs)
    func badConfigNamesTheKeyAndLine(_ bad: Bad) throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        guard let error = box.error(bad.text, environment: bad.environment) else {
            Issue.record("\(bad.label): loaded without error")
            return
        }
        #expect(error.key == bad.key, "\(error)")
        if let line = bad.line { #expect(error.line == line, "\(error)") }
        #expect(error.file == box.dir.file("config.json"))
        #expect(!error.message.isEmpty)
        // the description names file, line and key
        #expect(error.description.hasPrefix(box.dir.file("config.json")))
        if let key = bad.key { #expect(error.description.contains(key)) }
    }

    @Test func unreadableApiKeyFileByMode() throws {
        guard getuid() != 0 else { return }  // root reads mode-000 files; covered by the missing-file case
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        chmod(box.dir.file("key"), 0)
        let e = box.error("{\"backend\": {\"url\": \"http://h:1\", \"api_key_file\": \"$T/key\"}, \(Self.templates)}")
        #expect(e?.key == "backend.api_key_file")
    }
}

@Suite struct BioproxyStateDirectoryTests {
    @Test
    func emptyStateDirectoryIsIgnoredLikeNativeConfigs() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        try box.dir.write("prompts/a.txt", "A")
        let c = try box.load("{\"prefixes\": {\"@a\": \"prompts/a.txt\"}}", environment: ["STATE_DIRECTORY": ""])
        #expect(c.stateDir == "/var/lib/kvwarm")
    }
}

/// A `.json` template is a request template: configured like any other, refused with a
/// completion endpoint or a role.
@Suite struct RequestTemplateConfigTests {
    @Test func aJSONTemplateNeedsNoExtraKeyAndRefusesEndpointAndRole() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        try box.dir.write("tpl/agent.json", #"{"messages": [{"role": "user", "content": "<{message}>"}]}"#)
        let c = try box.load(#"{"backend": {"url": "http://127.0.0.1:1"}, "templates": {"agent": "$T/tpl/agent.json", "code": "$T/tpl/code.txt"}}"#)
        #expect(c.templates.map(\.isRequest) == [true, false])
        #expect(c.templates[0].endpoint == .chat)

        let ep = box.error(#"{"backend": {"url": "http://127.0.0.1:1"}, "templates": {"agent": {"path": "$T/tpl/agent.json", "endpoint": "completion"}}}"#)
        #expect(ep?.key == "templates.agent.endpoint", "\(String(describing: ep))")
        #expect("\(String(describing: ep))".contains("chat-completions body"))
        let role = box.error(#"{"backend": {"url": "http://127.0.0.1:1"}, "templates": {"agent": {"path": "$T/tpl/agent.json", "role": "system"}}}"#)
        #expect(role?.key == "templates.agent.role", "\(String(describing: role))")
        #expect(try box.load(#"{"backend": {"url": "http://127.0.0.1:1"}, "templates": {"agent": {"path": "$T/tpl/agent.json", "endpoint": "chat"}}}"#)
            .templates[0].isRequest)
    }
}
