
/// The llama-server endpoint a template's real requests go to.
public enum TemplateEndpoint: String, Sendable, Codable, CaseIterable {
    /// `/v1/chat/completions`: the template is one message rendered by the server's chat template.
    case chat
    /// `/completion`: the template text is the raw prompt.
    case completion
}

/// The chat role the template text takes in a conversation.
public enum TemplateRole: String, Sendable, Codable, CaseIterable {
    case user, system
}

/// One configured template.
public struct TemplateSpec: Sendable, Equatable, Codable {
    /// The configured name (also the `TEMPLATE` log field).
    public var name: String
    /// Absolute path of the template file.
    public var path: String
    public var endpoint: TemplateEndpoint
    public var role: TemplateRole
    /// The named backend the template is warmed on (`templates.NAME.backend`; ``KVWarmConfig/defaultBackendName``
    /// when absent).
    public var backend: String = KVWarmConfig.defaultBackendName
    /// The router model the template belongs to (`templates.NAME.model`); nil for a single-model server.
    public var model: String? = nil

    /// Whether the file is a request template: an OpenAI chat-completions body (`.json`).
    public var isRequest: Bool { path.hasSuffix(".json") }

    /// The pipeline that warms the template.
    public var pipeline: PipelineKey { PipelineKey(backend: backend, model: model) }

    public init(name: String, path: String, endpoint: TemplateEndpoint = .chat, role: TemplateRole = .user,
                backend: String = KVWarmConfig.defaultBackendName, model: String? = nil) {
        self.name = name
        self.path = path
        self.endpoint = endpoint
        self.role = role
        self.backend = backend
        self.model = model
    }
}

/// Where llama-server listens.
public enum BackendAddress: Sendable, Equatable, CustomStringConvertible {
    /// `http://host:port` (a path prefix is kept, without a trailing slash).
    case http(baseURL: String)
    /// `unix:/path/llama.sock`.
    case unixSocket(path: String)

    public var description: String {
        switch self {
        case .http(let u): u
        case .unixSocket(let p): "unix:\(p)"
        }
    }
}

/// What to do when the backend is still unreachable at the startup deadline.
public enum UnavailablePolicy: String, Sendable, Equatable {
    /// Send READY=1 with a STATUS saying so, and warm when the backend returns.
    case degraded
    /// Exit 69 (EX_UNAVAILABLE).
    case fail
}

/// The resolved configuration of a kvwarm instance.
public struct KVWarmConfig: Sendable, Equatable {
    public struct Backend: Sendable, Equatable {
        public var address: BackendAddress
        public var apiKeyFile: String?
        public var slotSaveDir: String?
        public var timeout: Duration
        public var kvTag: String?
        /// How often a running kvwarm checks the backend for a restart (one `GET /slots`).
        public var checkInterval: Duration
        /// How often, at most, a check also reads the full fingerprint when nothing looked different.
        public var fingerprintInterval: Duration

        /// `backend.timeout_seconds` when absent.
        public static let defaultTimeout: Duration = .seconds(600)
        /// `backend.check_interval_seconds` when absent.
        public static let defaultCheckInterval: Duration = .seconds(5)
        /// `backend.fingerprint_check_seconds` when absent.
        public static let defaultFingerprintInterval: Duration = .seconds(60)
    }

    public struct Startup: Sendable, Equatable {
        public var backendWait: Duration
        public var onUnavailable: UnavailablePolicy

        /// `startup.backend_wait_seconds` when absent.
        public static let defaultBackendWait: Duration = .seconds(120)
        /// `startup.on_unavailable` when absent.
        public static let defaultOnUnavailable = UnavailablePolicy.degraded
    }

    /// How templates are put back into idle slots after requests took them (`keep_warm`).
    public struct KeepWarm: Sendable, Equatable {
        /// Restores per template in any 60 s (`keep_warm.restores_per_minute`); 0 turns keeping warm off.
        public var restoresPerMinute: Int
        /// How often the slots are read while requests are coming in (`keep_warm.active_check_ms`).
        public var activeCheckInterval: Duration

        /// `keep_warm.restores_per_minute` when absent.
        public static let defaultRestoresPerMinute = 30
        /// `keep_warm.active_check_ms` when absent.
        public static let defaultActiveCheckInterval: Duration = .milliseconds(250)

        public init(restoresPerMinute: Int = defaultRestoresPerMinute,
                    activeCheckInterval: Duration = defaultActiveCheckInterval) {
            self.restoresPerMinute = restoresPerMinute
            self.activeCheckInterval = activeCheckInterval
        }
    }

    /// `state_dir` when neither the config nor `$STATE_DIRECTORY` sets it.
    public static let defaultStateDir = "/var/lib/kvwarm"
    /// `debounce_ms` when absent.
    public static let defaultDebounce: Duration = .milliseconds(150)
    /// `max_wait_ms` when absent (raised to the debounce when that is longer).
    public static let defaultMaxWait: Duration = .milliseconds(2000)

    /// The backend of this configuration: the default one in a file's configuration, the
    /// pipeline's own in a ``view(for:)``.
    public var backend: Backend
    /// Every configured backend by name: `backend` as ``defaultBackendName`` and the entries of `backends`.
    public var backends: [String: Backend] = [:]
    public var stateDir: String
    public var debounce: Duration
    public var maxWait: Duration
    public var templates: [TemplateSpec]
    public var includeRoots: [String]
    public var startup: Startup
    public var keepWarm: KeepWarm = KeepWarm()
    /// Where the Prometheus text file for node_exporter's textfile collector goes (`metrics_file`).
    public var metricsFile: String? = nil
    public var maxTemplateBytes: Int
    /// Where the config was read from.
    public var sourcePath: String
    /// Notices to log once (for example ignored bioproxy keys).
    public var notices: [String]
    /// How long one warm may be in flight before the watchdog stops pinging
    /// (`watchdog_hang_seconds`); nil means `2 × backend.timeout + 60 s`.
    public var watchdogHang: Duration? = nil

    /// The in-flight age past which the watchdog withholds its pings.
    public var watchdogHangAfter: Duration { watchdogHang ?? backend.timeout * 2 + .seconds(60) }

    /// The name the top-level `backend` key has among ``backends``.
    public static let defaultBackendName = "default"

    /// The pipelines the templates need, sorted (one per backend, and per model on a router).
    public var pipelines: [PipelineKey] { Set(templates.map(\.pipeline)).sorted() }

    /// This configuration narrowed to one pipeline: its templates only, and its backend as ``backend``.
    public func view(for key: PipelineKey) -> KVWarmConfig {
        var v = self
        v.templates = templates.filter { $0.pipeline == key }
        if let b = backends[key.backend] { v.backend = b }
        return v
    }

    /// The template with `name`, if configured.
    public func template(named name: String) -> TemplateSpec? { templates.first { $0.name == name } }
}
