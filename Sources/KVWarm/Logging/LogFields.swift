import Logging

/// The structured fields every kvwarm record carries.
///
/// Keys are journald field names already (upper case, digits and `_`), so the
/// journal handler sends them verbatim and `journalctl -t kvwarm STAGE=warm`
/// matches them. The text and JSON handlers print the same keys.
public enum LogField {
    public static let stage = "STAGE"
    public static let template = "TEMPLATE"
    public static let digest = "DIGEST"
    public static let mode = "MODE"
    public static let outcome = "OUTCOME"
    public static let reason = "REASON"
    public static let durationMS = "DURATION_MS"
    public static let promptTokens = "PROMPT_TOKENS"
    public static let cachedTokens = "CACHED_TOKENS"
    public static let messageID = "MESSAGE_ID"
    public static let slot = "SLOT"
    public static let kvFile = "KV_FILE"
    public static let path = "PATH_NAME"
    public static let hint = "HINT"
    /// The named backend of a record's pipeline (every record of a pipeline carries it).
    public static let backend = "BACKEND"
    /// The router model of a record's pipeline, when it has one.
    public static let model = "MODEL"
    /// The `LogEvent.error` of a record, as text (added by the handlers when an error is attached).
    public static let error = "ERROR"
}

/// A pipeline stage, as written in the `STAGE` field.
public enum Stage: String, Sendable, CaseIterable {
    case watch, debounce, hash, render, warm, persist, keep, startup, reload, backend, shutdown
}

/// What became of a stage's work, as written in the `OUTCOME` field.
public enum Outcome: String, Sendable {
    case ok, changed, unchanged, failed, ineffective
    /// A router model is not loaded: nothing was attempted.
    case unloaded
}

/// How a template was warmed, as written in the `MODE` field.
public enum WarmMode: String, Sendable, Codable {
    case prefill, restore
}

/// One fixed 128-bit journal `MESSAGE_ID` per kind of event.
///
/// Each has an entry in `packaging/kvwarm.catalog`, so `journalctl -x`
/// explains the event and what to do about it.
public enum MessageID: String, Sendable, CaseIterable {
    case watchEvent = "d16d63b28ec84c92aa10de2b07d70db8"
    case watchOverflow = "7d765175311b42ce9305ea89d707c441"
    case watchError = "5b0044540bc646dc81096db400233ed7"
    case debounceFired = "47d3f5691cf94e43abcacc2142903f94"
    case hashCompared = "6f9b09825e51455db0aaeca5111c69e8"
    case templateInvalid = "e61ecceb9a9d4cc58d2b149b5fbba949"
    case rendered = "d23d5d1335704284a65226866d083ab3"
    case renderFailed = "3cda2725360c4366995c1c80994fc637"
    case warmDone = "50ed4819f05244c1831128d0eb6c2459"
    case warmFailed = "a18f420f9ee341ecae4f1a8242ba6136"
    case warmQueued = "263d36d652814daca91f9239e13fdc79"
    case warmProgress = "ec59c9b681184f48813d369ea292fb66"
    case restoreIneffective = "518ff366bec44aa09af38bae588ac946"
    case idleSlotsCleared = "7c2f4e9a1b6d4f0e8a35c1d2e9b7f604"
    case keptWarm = "a134f5b091774980a00d57a3978f47e7"
    case keepWarmSummary = "6cd1c43838be4f43bb9fbd1751838851"
    case keepWarmBudget = "fc55f5effeba4d1b982044745b7ab220"
    case keepWarmFailed = "97495fc8f0fc4a95a45371c2c31e9cd0"
    case persisted = "d89301a29dd647699483573bbc789828"
    case persistFailed = "8bb4afb9548f4ae2a9e62f7b2c5b02f0"
    case startupBegin = "fa5ede2bc10143a696698d9da32e23f2"
    case startupReady = "df8dfef4b5fe42348de980ad5c1bf8c7"
    case startupDegraded = "eeae5c5a7fd34328b7b2121df1214cab"
    case backendWaiting = "f6a8a91f4dc34b1e91196c57d46c1f74"
    case reloadDone = "f644c36011474b11b3b8227c23667a14"
    case reloadRejected = "c00adbc80ddd47b19cf4f7767f85a653"
    case backendChanged = "abcdc86b957f4708b96e47773c7be8b2"
    case backendUnavailable = "9580927fdc7943a48de4b917c750c67c"
    case modelUnloaded = "dde8b29bd7b947fcb0af84052de5b8e9"
    case credentialRejected = "118c6126cd9340d6a28a5b37c252bbd7"
    case shutdown = "e0e1f8e0b900429e98f12a04ba50b0b2"
}

extension Logger.Metadata {
    /// Metadata for one stage record: `STAGE`, `MESSAGE_ID` and optional `TEMPLATE`.
    public static func stage(_ stage: Stage, _ id: MessageID, template: String? = nil) -> Logger.Metadata {
        var m: Logger.Metadata = [LogField.stage: .string(stage.rawValue), LogField.messageID: .string(id.rawValue)]
        if let template { m[LogField.template] = .string(template) }
        return m
    }

    /// ``stage(_:_:template:)`` plus `extra` (which wins over the stage fields).
    public static func stage(_ stage: Stage, _ id: MessageID, template: String? = nil,
                             _ extra: Logger.Metadata) -> Logger.Metadata {
        Self.stage(stage, id, template: template).merging(extra) { $1 }
    }
}
