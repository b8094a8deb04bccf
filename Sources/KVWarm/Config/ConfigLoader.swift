import FoundationEssentials

/// Reads and validates a kvwarm config file (or a bioproxy config.json).
///
/// Every problem is a ``ConfigError`` naming the key (and the line where the
/// parser knows it). Unknown keys are errors, so a typo never silently falls
/// back to a default.
public struct ConfigLoader: Sendable {
    /// The process environment (only `STATE_DIRECTORY` and `CREDENTIALS_DIRECTORY` are read).
    public var environment: [String: String]

    /// For commands run outside the unit (`status`, `check`): an `api_key_file` under
    /// `${CREDENTIALS_DIRECTORY}` while that is not set leaves the key out, with a notice,
    /// instead of failing.
    public var keyOptional = false

    public init(environment: [String: String] = ProcessEnvironment.current, keyOptional: Bool = false) {
        self.environment = environment
        self.keyOptional = keyOptional
    }

    /// The config path: `--config`, else `$KVWARM_CONFIG`, else /etc/kvwarm/config.json.
    /// Control and format characters (Unicode categories Cc and Cf).
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .control, .format: true
        default: false
        }
    }

    public static func configPath(explicit: String?, environment: [String: String]) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = environment["KVWARM_CONFIG"], !env.isEmpty { return env }
        return "/etc/kvwarm/config.json"
    }

    /// `max_template_bytes` when absent.
    public static let defaultMaxTemplateBytes = 4 * 1024 * 1024

    /// Loads and validates the file at `path`.
    public func load(path: String) throws(ConfigError) -> KVWarmConfig {
        guard let data = FileSystem.contents(path) else {
            let reason = FileSystem.exists(path) ? "cannot read the file" : "no such file"
            throw ConfigError(file: path, message: reason)
        }
        return try parse(Array(data), path: path)
    }

    /// Validates config text already read from `path`.
    public func parse(_ bytes: [UInt8], path: String) throws(ConfigError) -> KVWarmConfig {
        let root: JSONNode
        do {
            root = try JSONDocumentParser.parse(bytes)
        } catch {
            throw ConfigError(file: path, line: error.line, message: "syntax error at column \(error.column): \(error.message)")
        }
        let r = Reader(file: path, environment: environment, keyOptional: keyOptional)
        guard case .object(let members) = root.value else {
            throw ConfigError(file: path, line: root.line, message: "the config must be a JSON object, not \(root.value.typeName)")
        }
        let keys = Set(members.map(\.key))
        let bioproxyKeys: Set<String> = ["backend_url", "prefixes", "warmup_check_interval", "proxy_host",
                                         "proxy_port", "admin_host", "admin_port"]
        if !keys.isEmpty, keys.isSubset(of: bioproxyKeys) {
            return try r.bioproxy(members, line: root.line)
        }
        return try r.native(members, line: root.line)
    }
}

/// Walks the parsed document, producing errors that name each key.
private final class Reader {
    let file: String
    let environment: [String: String]
    let keyOptional: Bool
    /// Notices collected while reading (added to the config's).
    var notices: [String] = []

    init(file: String, environment: [String: String], keyOptional: Bool) {
        self.file = file
        self.environment = environment
        self.keyOptional = keyOptional
    }

    func fail(_ key: String?, _ node: JSONNode?, _ message: String) -> ConfigError {
        ConfigError(file: file, key: key, line: node?.line, message: message)
    }

    func object(_ node: JSONNode, _ key: String, allowed: Set<String>) throws(ConfigError) -> [String: JSONNode] {
        guard case .object(let members) = node.value else {
            throw fail(key, node, "expected an object, got \(node.value.typeName)")
        }
        var out: [String: JSONNode] = [:]
        for m in members {
            guard allowed.contains(m.key) else {
                let known = allowed.sorted().joined(separator: ", ")
                throw fail(key.isEmpty ? m.key : "\(key).\(m.key)", m.value, "unknown key (known keys: \(known))")
            }
            out[m.key] = m.value
        }
        return out
    }

    func string(_ node: JSONNode, _ key: String) throws(ConfigError) -> String {
        guard case .string(let s) = node.value else { throw fail(key, node, "expected a string, got \(node.value.typeName)") }
        return s
    }

    func number(_ node: JSONNode, _ key: String, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard case .number(let d) = node.value else { throw fail(key, node, "expected a number, got \(node.value.typeName)") }
        guard range.contains(d) else {
            throw fail(key, node, "\(format(d)) is out of range (\(format(range.lowerBound))…\(format(range.upperBound)))")
        }
        return d
    }

    func integer(_ node: JSONNode, _ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let d = try number(node, key, range: Double(range.lowerBound)...Double(range.upperBound))
        guard d == d.rounded() else { throw fail(key, node, "expected a whole number, got \(format(d))") }
        return Int(d)
    }

    /// `seconds` as a duration, to the millisecond.
    func duration(seconds: Double) -> Duration { .milliseconds(Int64(seconds * 1000)) }

    /// Whole milliseconds in `d`.
    func wholeMilliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds) * 1000 + Int(d.components.attoseconds / 1_000_000_000_000_000)
    }

    func format(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }

    func absolutePath(_ node: JSONNode, _ key: String, base: String? = nil) throws(ConfigError) -> String {
        var s = try string(node, key)
        if s.isEmpty { throw fail(key, node, "empty path") }
        if s.contains("\0") { throw fail(key, node, "path contains a NUL byte") }
        if !s.hasPrefix("/") {
            guard let base else { throw fail(key, node, "must be an absolute path, got \"\(s)\"") }
            s = base + "/" + s
        }
        return LexicalPath.normalize(s)
    }

    func existingDirectory(_ path: String, _ node: JSONNode, _ key: String) throws(ConfigError) {
        guard FileSystem.exists(path) else {
            throw fail(key, node, "directory \(path) does not exist")
        }
        guard FileSystem.isDirectory(path) else { throw fail(key, node, "\(path) is not a directory") }
    }

    func backendAddress(_ node: JSONNode, _ key: String) throws(ConfigError) -> BackendAddress {
        let s = try string(node, key)
        if s.hasPrefix("unix:") {
            let p = String(s.dropFirst(5))
            guard p.hasPrefix("/") else { throw fail(key, node, "a unix socket URL must be unix:/absolute/path, got \"\(s)\"") }
            guard p.utf8.count < 108 else { throw fail(key, node, "unix socket path is longer than 107 bytes") }
            return .unixSocket(path: p)
        }
        guard let u = URLComponents(string: s), let scheme = u.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = u.host, !host.isEmpty,
              u.query == nil, u.fragment == nil, u.user == nil
        else {
            throw fail(key, node, "expected http://host:port or unix:/path/llama.sock, got \"\(s)\"")
        }
        if let port = u.port, !(1...65535).contains(port) { throw fail(key, node, "port \(port) is out of range") }
        var base = s
        while base.hasSuffix("/") { base.removeLast() }
        return .http(baseURL: base)
    }

    // MARK: - kvwarm's own format

    func native(_ members: [(key: String, value: JSONNode)], line: Int) throws(ConfigError) -> KVWarmConfig {
        let root = try object(JSONNode(value: .object(members), line: line), "", allowed: [
            "backend", "state_dir", "debounce_ms", "max_wait_ms", "templates", "include_roots", "startup",
            "max_template_bytes", "watchdog_hang_seconds", "keep_warm", "metrics_file", "backends",
        ])
        var backends: [String: KVWarmConfig.Backend] = [:]
        if let n = root["backend"] {
            backends[KVWarmConfig.defaultBackendName] = try backendSettings(n, "backend")
        }
        if let n = root["backends"] {
            guard case .object(let members) = n.value else {
                throw fail("backends", n, "expected an object mapping backend names to backends, got \(n.value.typeName)")
            }
            for m in members {
                let key = "backends.\(m.key)"
                guard !m.key.isEmpty, m.key.utf8.count <= 64, m.key.unicodeScalars.allSatisfy({
                    ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0)
                }) else {
                    throw fail(key, m.value, "a backend name is 1 to 64 of A-Z a-z 0-9 _ - . (it names the BACKEND log field and a state file)")
                }
                guard backends[m.key] == nil else {
                    throw fail(key, m.value, m.key == KVWarmConfig.defaultBackendName
                        ? "\"\(m.key)\" is the name of the top-level backend; rename this one"
                        : "backend \"\(m.key)\" is configured twice")
                }
                backends[m.key] = try backendSettings(m.value, key)
            }
        }
        guard !backends.isEmpty else { throw fail("backend", nil, "missing (it needs at least \"url\"; or name several in \"backends\")") }

        var stateDir = KVWarmConfig.defaultStateDir
        if let n = root["state_dir"] { stateDir = try absolutePath(n, "state_dir") }
        if let sd = environment["STATE_DIRECTORY"], !sd.isEmpty {
            // systemd may pass several colon-separated directories; the first is ours
            stateDir = String(sd.split(separator: ":").first ?? Substring(sd))
        }
        let debounceMS = try root["debounce_ms"].map { n throws(ConfigError) in
            try integer(n, "debounce_ms", range: 0...600_000)
        } ?? wholeMilliseconds(KVWarmConfig.defaultDebounce)
        let maxWaitMS = try root["max_wait_ms"].map { n throws(ConfigError) in
            try integer(n, "max_wait_ms", range: 0...3_600_000)
        } ?? max(wholeMilliseconds(KVWarmConfig.defaultMaxWait), debounceMS)
        if maxWaitMS < debounceMS {
            throw fail("max_wait_ms", root["max_wait_ms"], "must be at least debounce_ms (\(debounceMS))")
        }
        let maxBytes = try root["max_template_bytes"].map { n throws(ConfigError) in
            try integer(n, "max_template_bytes", range: 1...(1 << 30))
        } ?? ConfigLoader.defaultMaxTemplateBytes

        guard let tNode = root["templates"] else { throw fail("templates", nil, "missing (map each template name to its file)") }
        let templates = try templateSpecs(tNode, base: nil, backends: backends)

        var includeRoots: [String]
        if let n = root["include_roots"] {
            guard case .array(let items) = n.value else {
                throw fail("include_roots", n, "expected an array of directories, got \(n.value.typeName)")
            }
            includeRoots = []
            for (i, item) in items.enumerated() {
                let p = try absolutePath(item, "include_roots[\(i)]")
                try existingDirectory(p, item, "include_roots[\(i)]")
                includeRoots.append(p)
            }
        } else {
            includeRoots = defaultIncludeRoots(templates)
        }

        let hang = try root["watchdog_hang_seconds"].map { n throws(ConfigError) in
            try number(n, "watchdog_hang_seconds", range: 1...172_800)
        }

        var wait = KVWarmConfig.Startup.defaultBackendWait
        var policy = KVWarmConfig.Startup.defaultOnUnavailable
        if let n = root["startup"] {
            let s = try object(n, "startup", allowed: ["backend_wait_seconds", "on_unavailable"])
            if let w = s["backend_wait_seconds"] {
                wait = duration(seconds: try number(w, "startup.backend_wait_seconds", range: 0...86_400))
            }
            if let p = s["on_unavailable"] {
                let v = try string(p, "startup.on_unavailable")
                guard let pol = UnavailablePolicy(rawValue: v) else {
                    throw fail("startup.on_unavailable", p, "expected \"degraded\" or \"fail\", got \"\(v)\"")
                }
                policy = pol
            }
        }
        var keepWarm = KVWarmConfig.KeepWarm()
        if let n = root["keep_warm"] {
            let k = try object(n, "keep_warm", allowed: ["restores_per_minute", "active_check_ms"])
            if let r = k["restores_per_minute"] {
                keepWarm.restoresPerMinute = try integer(r, "keep_warm.restores_per_minute", range: 0...600)
            }
            if let a = k["active_check_ms"] {
                keepWarm.activeCheckInterval = .milliseconds(try integer(a, "keep_warm.active_check_ms", range: 50...60_000))
            }
        }
        let main = backends[KVWarmConfig.defaultBackendName] ?? backends[backends.keys.sorted()[0]]!
        var config = KVWarmConfig(
            backend: main,
            stateDir: stateDir, debounce: .milliseconds(debounceMS), maxWait: .milliseconds(maxWaitMS),
            templates: templates, includeRoots: includeRoots,
            startup: .init(backendWait: wait, onUnavailable: policy),
            maxTemplateBytes: maxBytes, sourcePath: file, notices: [],
            watchdogHang: hang.map { .milliseconds(Int64($0 * 1000)) })
        config.keepWarm = keepWarm
        config.backends = backends
        config.notices += notices
        if let n = root["metrics_file"] {
            let p = try absolutePath(n, "metrics_file")
            guard p.hasSuffix(".prom") else {
                throw fail("metrics_file", n, "must end in .prom (node_exporter's textfile collector reads only those), got \"\(p)\"")
            }
            try existingDirectory(LexicalPath.parent(p), n, "metrics_file")
            config.metricsFile = p
        }
        return config
    }

    /// One backend's settings: the top-level `backend` object or an entry of `backends` (`key` names it).
    func backendSettings(_ backendNode: JSONNode, _ key: String) throws(ConfigError) -> KVWarmConfig.Backend {
        let b = try object(backendNode, key, allowed: [
            "url", "api_key_file", "slot_save_dir", "timeout_seconds", "kv_tag", "check_interval_seconds",
            "fingerprint_check_seconds",
        ])
        guard let urlNode = b["url"] else { throw fail("\(key).url", backendNode, "missing") }
        let address = try backendAddress(urlNode, "\(key).url")
        var apiKeyFile: String?
        if let n = b["api_key_file"] {
            var s = try string(n, "\(key).api_key_file")
            var usable = true
            let credPrefix = "${CREDENTIALS_DIRECTORY}/"
            if s.hasPrefix(credPrefix) {
                if let dir = environment["CREDENTIALS_DIRECTORY"] {
                    s = dir + "/" + s.dropFirst(credPrefix.count)
                } else if keyOptional {
                    notices.append("\(key).api_key_file uses ${CREDENTIALS_DIRECTORY}, which only the unit sets: the backend is asked without the key here")
                    usable = false
                } else {
                    throw fail("\(key).api_key_file", n, "uses ${CREDENTIALS_DIRECTORY} but it is not set (LoadCredential= in the unit sets it)")
                }
            }
            if usable {
                let p = try absolutePath(JSONNode(value: .string(s), line: n.line), "\(key).api_key_file")
                guard FileSystem.isReadable(p) else {
                    throw fail("\(key).api_key_file", n, "cannot read \(p)")
                }
                apiKeyFile = p
            }
        }
        var slotSaveDir: String?
        if let n = b["slot_save_dir"] {
            let p = try absolutePath(n, "\(key).slot_save_dir")
            // a directory that does not exist yet is the backend's to create (llama-server makes
            // its --slot-save-path at start): startup waits for it like for the backend
            if FileSystem.exists(p) { try existingDirectory(p, n, "\(key).slot_save_dir") }
            slotSaveDir = p
        }
        let timeout = try b["timeout_seconds"].map { n throws(ConfigError) in
            duration(seconds: try number(n, "\(key).timeout_seconds", range: 1...86_400))
        } ?? KVWarmConfig.Backend.defaultTimeout
        let kvTag = try b["kv_tag"].map { n throws(ConfigError) in try string(n, "\(key).kv_tag") }
        let check = try b["check_interval_seconds"].map { n throws(ConfigError) in
            duration(seconds: try number(n, "\(key).check_interval_seconds", range: 0.2...3600))
        } ?? KVWarmConfig.Backend.defaultCheckInterval
        let fingerprintCheck = try b["fingerprint_check_seconds"].map { n throws(ConfigError) in
            duration(seconds: try number(n, "\(key).fingerprint_check_seconds", range: 0.2...86_400))
        } ?? KVWarmConfig.Backend.defaultFingerprintInterval

        return .init(address: address, apiKeyFile: apiKeyFile, slotSaveDir: slotSaveDir, timeout: timeout,
                     kvTag: kvTag, checkInterval: check, fingerprintInterval: fingerprintCheck)
    }

    func defaultIncludeRoots(_ templates: [TemplateSpec]) -> [String] {
        var seen: [String] = []
        for t in templates {
            let d = LexicalPath.parent(t.path)
            if !seen.contains(d) { seen.append(d) }
        }
        return seen
    }

    func templateSpecs(_ node: JSONNode, base: String?, stripAt: Bool = false,
                       backends: [String: KVWarmConfig.Backend]) throws(ConfigError) -> [TemplateSpec] {
        guard case .object(let members) = node.value else {
            throw fail("templates", node, "expected an object mapping names to files, got \(node.value.typeName)")
        }
        guard !members.isEmpty else { throw fail("templates", node, "no templates configured") }
        var out: [TemplateSpec] = []
        var fileNames: [String: String] = [:]
        for m in members {
            var name = m.key
            if stripAt, name.hasPrefix("@") { name.removeFirst() }
            let key = "templates.\(m.key)"
            guard !name.isEmpty else { throw fail(key, m.value, "template name is empty") }
            guard name.unicodeScalars.allSatisfy({ !ConfigLoader.isControl($0) }) else {
                throw fail(key, m.value, "template name contains a control character (newline, tab, …)")
            }
            guard name.utf8.count <= 200 else { throw fail(key, m.value, "template name is longer than 200 bytes") }
            var spec: TemplateSpec
            switch m.value.value {
            case .string:
                spec = TemplateSpec(name: name, path: try absolutePath(m.value, key, base: base))
            case .object:
                let o = try object(m.value, key, allowed: ["path", "endpoint", "role", "backend", "model"])
                guard let p = o["path"] else { throw fail("\(key).path", m.value, "missing") }
                spec = TemplateSpec(name: name, path: try absolutePath(p, "\(key).path", base: base))
                if let e = o["endpoint"] {
                    let v = try string(e, "\(key).endpoint")
                    guard let ep = TemplateEndpoint(rawValue: v) else {
                        throw fail("\(key).endpoint", e, "expected \"chat\" or \"completion\", got \"\(v)\"")
                    }
                    spec.endpoint = ep
                }
                if let r = o["role"] {
                    let v = try string(r, "\(key).role")
                    guard let role = TemplateRole(rawValue: v) else {
                        throw fail("\(key).role", r, "expected \"user\" or \"system\", got \"\(v)\"")
                    }
                    spec.role = role
                }
                if let b = o["backend"] {
                    let v = try string(b, "\(key).backend")
                    guard backends[v] != nil else {
                        throw fail("\(key).backend", b, "no backend \"\(v)\" (configured: \(backends.keys.sorted().joined(separator: ", ")))")
                    }
                    spec.backend = v
                }
                if let mo = o["model"] {
                    let v = try string(mo, "\(key).model")
                    guard !v.isEmpty, v.utf8.count <= 200,
                          v.unicodeScalars.allSatisfy({ !ConfigLoader.isControl($0) }) else {
                        throw fail("\(key).model", mo, "a router model name is 1 to 200 bytes without control characters")
                    }
                    spec.model = v
                }
                if spec.isRequest {
                    // the request body says it all: messages carry their roles, and it is a chat request
                    if let e = o["endpoint"], spec.endpoint != .chat {
                        throw fail("\(key).endpoint", e, "a request template (.json) is a chat-completions body; it cannot use the completion endpoint")
                    }
                    if let r = o["role"] {
                        throw fail("\(key).role", r, "a request template (.json) gives each message's role itself; remove \"role\"")
                    }
                }
            default:
                throw fail(key, m.value, "expected a file path or an object with \"path\", got \(m.value.value.typeName)")
            }
            if backends[spec.backend] == nil {
                throw fail("\(key).backend", m.value, "missing: there is no top-level \"backend\", so each template names one of \(backends.keys.sorted().joined(separator: ", "))")
            }
            let dir = LexicalPath.parent(spec.path)
            try existingDirectory(dir, m.value, key)
            let fileName = SlotFileNaming.stem(template: name, model: spec.model)
            if let other = fileNames[fileName] {
                throw fail(key, m.value, "names \"\(other)\" and \"\(name)\" both become the KV file name \"\(fileName)\"; rename one")
            }
            fileNames[fileName] = name
            out.append(spec)
        }
        return out
    }

    // MARK: - bioproxy's config.json

    func bioproxy(_ members: [(key: String, value: JSONNode)], line: Int) throws(ConfigError) -> KVWarmConfig {
        let root = try object(JSONNode(value: .object(members), line: line), "", allowed: [
            "backend_url", "prefixes", "warmup_check_interval", "proxy_host", "proxy_port", "admin_host", "admin_port",
        ])
        var notices: [String] = []
        let address: BackendAddress
        if let n = root["backend_url"] {
            address = try backendAddress(n, "backend_url")
        } else {
            address = .http(baseURL: "http://localhost:8081")  // bioproxy's default
        }
        if root["warmup_check_interval"] != nil {
            notices.append("bioproxy key warmup_check_interval is ignored: kvwarm reacts to file events instead of polling")
        }
        let proxyKeys = ["proxy_host", "proxy_port", "admin_host", "admin_port"].filter { root[$0] != nil }
        if !proxyKeys.isEmpty {
            notices.append("bioproxy keys \(proxyKeys.joined(separator: ", ")) are ignored: kvwarm is not a proxy")
        }
        guard let prefixes = root["prefixes"] else { throw fail("prefixes", nil, "missing: no templates to warm") }
        // bioproxy resolves relative template paths against its working directory; kvwarm
        // has no meaningful one under systemd, so they resolve against the config's directory.
        let absoluteFile = file.hasPrefix("/") ? file : FileSystem.currentDirectory + "/" + file
        let base = LexicalPath.parent(LexicalPath.normalize(absoluteFile))
        let backend = KVWarmConfig.Backend(address: address, apiKeyFile: nil, slotSaveDir: nil,
                                           timeout: KVWarmConfig.Backend.defaultTimeout, kvTag: nil,
                                           checkInterval: KVWarmConfig.Backend.defaultCheckInterval,
                                           fingerprintInterval: KVWarmConfig.Backend.defaultFingerprintInterval)
        let templates = try templateSpecs(prefixes, base: base.isEmpty ? nil : base, stripAt: true,
                                          backends: [KVWarmConfig.defaultBackendName: backend])
        var config = KVWarmConfig(
            backend: backend,
            stateDir: environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
                ?? KVWarmConfig.defaultStateDir,
            debounce: KVWarmConfig.defaultDebounce, maxWait: KVWarmConfig.defaultMaxWait,
            templates: templates, includeRoots: defaultIncludeRoots(templates),
            startup: .init(backendWait: KVWarmConfig.Startup.defaultBackendWait,
                           onUnavailable: KVWarmConfig.Startup.defaultOnUnavailable),
            maxTemplateBytes: ConfigLoader.defaultMaxTemplateBytes, sourcePath: file, notices: notices)
        config.backends = [KVWarmConfig.defaultBackendName: backend]
        return config
    }
}
