/// The hash-compare decision: how to warm a snapshot.
public enum WarmPlan: Sendable, Equatable {
    /// Compute the prompt's KV from scratch; `reason` says why a restore won't do.
    case prefill(reason: String)
    /// Load the recorded KV file: content and backend are unchanged.
    case restore(kvFile: String)

    public var mode: WarmMode {
        switch self {
        case .prefill: .prefill
        case .restore: .restore
        }
    }
}

/// Chooses prefill or restore by comparing a snapshot with the persisted record.
///
/// Digest or fingerprint changed, or no KV file recorded → prefill. Unchanged
/// with a KV file → restore. So `touch` (an event with unchanged content)
/// re-warms cheaply from disk and an edit re-prefills.
public enum WarmPlanner {
    /// The prefill reason when the digest differs from the record's.
    public static let contentChanged = "content changed"

    /// - Parameters:
    ///   - kvFileExists: whether the recorded file is on disk; nil when kvwarm cannot see the slot directory.
    ///   - restoreIneffective: restores were seen not to take under this fingerprint.
    public static func plan(digest: String, fingerprint: String, record: WarmRecord?,
                            restoreIneffective: Bool, kvFileExists: (String) -> Bool?) -> WarmPlan {
        guard let record, let recorded = record.digest else { return .prefill(reason: "first warm") }
        guard recorded == digest else { return .prefill(reason: contentChanged) }
        guard record.fingerprint == fingerprint else { return .prefill(reason: "backend fingerprint changed") }
        guard let file = record.kvFile else { return .prefill(reason: "no KV file recorded") }
        if restoreIneffective { return .prefill(reason: "restores do not take on this backend") }
        if kvFileExists(file) == false { return .prefill(reason: "KV file \(file) is gone") }
        return .restore(kvFile: file)
    }
}
