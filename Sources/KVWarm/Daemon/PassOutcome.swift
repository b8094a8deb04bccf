
/// How one pass of a template ended.
public enum PassResult: Sendable, Equatable {
    case warmed(WarmMode)
    case templateFailed(String)
    case backendFailed(BackendError)
    case removed
}

/// What a stage of a pass did, in the order it happened; ``StageLog`` writes each as one record.
public enum StageEvent: Sendable, Equatable {
    /// The hash stage could not load the template or one of its includes.
    case templateInvalid(TemplateProblem, path: String)
    /// The hash stage compared the digest with the record and chose a plan.
    case hashCompared(unchanged: Bool, digest: String, plan: WarmPlan)
    /// The server's chat template dropped the message sentinel.
    case sentinelLost(why: String)
    /// The server refused to render a request template.
    case renderRejected(why: String)
    /// The files changed but the server renders the prompt that `kvFile` holds: restore it.
    case samePrefix(kvFile: String)
    /// The render stage built the warm prompt.
    case rendered(promptChars: Int, hasPlaceholder: Bool)
    /// A restore's probe reused too little of the prompt, so the probe prefilled it.
    case restoreIneffective(cached: Int, of: Int)
    /// The warm stage finished.
    case warmed(WarmReport, digest: String)
    /// Fewer than ``TemplatePass/fewTokens`` tokens precede the message.
    case fewTokens(Int)
    /// The persist stage saved the slot to a KV file.
    case persisted(SlotPersister.Saved)
    /// The persist stage could not save the slot.
    case persistFailed(SlotPersister.Failure)
    /// A request to the backend failed in `stage`.
    case backendFailed(Stage, BackendError)
}

/// Everything one pass found out, for its owner to apply: the pass changes no shared state.
public struct PassOutcome: Sendable, Equatable {
    public var result: PassResult
    /// The template's new record; nil leaves the stored one as it is.
    public var record: WarmRecord?
    /// The files the template depends on (the template file and the includes it reached).
    public var dependencies: Set<String>
    /// A backend fingerprint the pass read from the server (nil when it used the known one).
    public var fingerprintRead: BackendFingerprint?
    /// The fingerprint digest under which a restore was seen not to take.
    public var restoreIneffective: String?
    public var events: [StageEvent]
    /// The warm prompt of a pass that warmed (kept for putting the template back later).
    public var prompt: String?

    public init(result: PassResult, record: WarmRecord? = nil, dependencies: Set<String>,
                fingerprintRead: BackendFingerprint? = nil, restoreIneffective: String? = nil,
                events: [StageEvent] = []) {
        self.result = result
        self.record = record
        self.dependencies = dependencies
        self.fingerprintRead = fingerprintRead
        self.restoreIneffective = restoreIneffective
        self.events = events
    }
}
