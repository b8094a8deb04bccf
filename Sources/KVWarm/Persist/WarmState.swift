import FoundationEssentials

/// What kvwarm knows about one template's last warm; persisted in the state file.
public struct WarmRecord: Sendable, Equatable, Codable {
    /// Digest of the inputs that were warmed.
    public var digest: String?
    /// ``BackendFingerprint/digest`` of the server that holds the warm.
    public var fingerprint: String?
    /// KV file saved for `digest` under `fingerprint` (a name inside the server's --slot-save-path).
    public var kvFile: String?
    /// Tokens in the warm prompt (and in the KV file): ``WarmReport/promptTokens``.
    public var promptTokens: Int?
    public var mode: WarmMode?
    /// Prompt tokens the last warm computed: ``WarmReport/processedTokens`` (`timings.prompt_n`).
    public var processedTokens: Int?
    /// Prompt tokens the last warm (or its restore probe) reused: ``WarmReport/cachedTokens`` (`timings.cache_n`).
    public var cachedTokens: Int?
    public var warmMS: Double?
    public var saveMS: Double?
    public var warmedAt: Date?
    /// SHA-256 (hex) of the warm prompt as the server rendered it: a file edit that renders the
    /// same prompt (whitespace in a request body, key order the server normalises) restores.
    public var prefixDigest: String?
    /// The last failure, cleared by the next success.
    public var lastError: String?
    public var lastErrorAt: Date?

    public init() {}

    /// The keys of schema 1 of the state file, kept so existing files stay readable.
    enum CodingKeys: String, CodingKey {
        case digest, fingerprint, kvFile, mode, warmMS, saveMS, warmedAt, lastError, lastErrorAt, prefixDigest
        case promptTokens = "tokens", processedTokens = "promptN", cachedTokens = "cacheN"
    }
}

/// The state file's content.
public struct WarmState: Sendable, Equatable, Codable {
    public static let currentSchema = 1

    public var schemaVersion: Int = WarmState.currentSchema
    /// The backend fingerprint last seen.
    public var backend: BackendFingerprint?
    /// Fingerprint digests under which a restore was seen not to take; restore is not tried under them again.
    public var restoreIneffective: [String] = []
    /// Fingerprint digests of backends seen clearing idle slots after each task launch
    /// (``SlotPolicyGuard``); absent in state files written before it existed.
    public var idleSlotsCleared: [String]?
    /// For a router model's state file: true while the router reports the model not loaded.
    public var modelUnloaded: Bool?
    public var templates: [String: WarmRecord] = [:]

    public init() {}
}
