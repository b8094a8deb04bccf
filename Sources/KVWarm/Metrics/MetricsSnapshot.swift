import FoundationEssentials

/// Everything one metrics file shows, gathered at one moment.
public struct MetricsSnapshot: Sendable, Equatable {
    /// What a template is now, as the `state` label of `kvwarm_template_state`.
    public enum State: String, Sendable, CaseIterable {
        /// Warm with its current content.
        case warm
        /// Queued or warming.
        case pending
        /// Its last pass failed (or it cannot be loaded).
        case failed
        /// Warm, but restores do not take on this backend: it prefills after every restart.
        case ineffective
        /// Never warmed.
        case never
        /// Its router model is not loaded: it is warmed when the model loads.
        case unloaded
    }

    public struct Template: Sendable, Equatable {
        public var name: String
        public var backend: String
        /// The router model it belongs to; empty for a single-model server.
        public var model: String
        public var state: State
        /// Warms since the daemon started, by mode (`prefill`, `restore`) and outcome (`ok`, `failed`).
        public var warms: [WarmCount: Int]
        /// Seconds spent in warms since the daemon started.
        public var warmSeconds: Double
        /// Times keeping warm put it back since the daemon started.
        public var keptWarm: Int
        /// The last good warm, from the state file.
        public var lastMode: String?
        public var lastDurationMS: Double?
        public var lastPromptTokens: Int?
        public var lastCachedTokens: Int?
        public var lastWarmedAt: Date?

        public init(name: String, backend: String, model: String = "", state: State) {
            self.name = name
            self.backend = backend
            self.model = model
            self.state = state
            warms = [:]
            warmSeconds = 0
            keptWarm = 0
        }
    }

    public struct WarmCount: Sendable, Hashable {
        public var mode: String
        public var outcome: String

        public init(mode: String, outcome: String) {
            self.mode = mode
            self.outcome = outcome
        }
    }

    public var templates: [Template]
    /// When the file was written (`kvwarm_metrics_written_timestamp_seconds`).
    public var writtenAt: Date

    public init(templates: [Template], writtenAt: Date) {
        self.templates = templates
        self.writtenAt = writtenAt
    }
}
