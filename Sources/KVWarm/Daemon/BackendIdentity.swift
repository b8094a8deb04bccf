import Logging

/// The one owner of "is this the same backend?" for one llama-server.
///
/// It holds the fingerprint believed current, the fingerprint digests under which
/// restores were seen not to take, and the slot scheduler's memory of which slot holds
/// which template (forgotten whenever the server may have restarted). The fingerprint
/// and the ineffective-restore findings are part of the state file, through the
/// ``StateWriter``. One instance serves one backend: a daemon with several backends
/// creates one per backend.
public actor BackendIdentity {
    private var current: BackendFingerprint? { didSet { currentDigest = current?.digest } }
    /// `current`'s digest, hashed once per fingerprint read (every check asks for it).
    private var currentDigest: String?
    /// The last fingerprint recorded in the state file, compared with the first one read.
    private var recorded: BackendFingerprint?
    public private(set) var restoreIneffective: Set<String>
    public let scheduler: SlotScheduler
    /// Where templates sit in the slots, for keeping them warm under traffic.
    public nonisolated let keeper = SlotKeeper()
    private let writer: StateWriter
    private let logger: Logger

    public init(scheduler: SlotScheduler, writer: StateWriter, logger: Logger) {
        self.scheduler = scheduler
        self.writer = writer
        self.logger = logger
        let state = writer.state
        recorded = state.backend
        restoreIneffective = Set(state.restoreIneffective)
    }

    /// The fingerprint believed current; nil until one is read, and after the backend went away.
    public var fingerprint: BackendFingerprint? { current }

    /// The digest of ``fingerprint``.
    public var fingerprintDigest: String? { currentDigest }

    /// Records a fingerprint read from the server; true when its digest differs from the last
    /// one known (in memory or in the state file). A change is logged with the fields that changed.
    @discardableResult
    public func record(_ fp: BackendFingerprint) -> Bool {
        let previous = current ?? recorded
        current = fp
        guard let previous else {
            recorded = fp
            writer.update { $0.backend = fp }
            return false
        }
        let diffs = fp.differences(from: previous)
        if !diffs.isEmpty {
            logger.notice("backend fingerprint changed", metadata: .stage(.backend, .backendChanged, [
                "CHANGED": .string(diffs.joined(separator: ",")),
                LogField.hint: .string(fp.digest == previous.digest
                    ? "only the build changed: KV files stay valid"
                    : "KV files of the old backend will not be restored; templates re-prefill"),
            ]))
            recorded = fp
            writer.update { $0.backend = fp }
            writer.writeSoon()
        }
        return fp.digest != previous.digest
    }

    /// Records whether the backend with fingerprint digest `digest` clears idle slots
    /// (``SlotPolicyGuard``), for `kvwarm status`; true when that changed what was recorded.
    @discardableResult
    public func noteIdleSlotsCleared(_ cleared: Bool, digest: String) -> Bool {
        var set = Set(writer.state.idleSlotsCleared ?? [])
        let had = set.contains(digest)
        if cleared { set.insert(digest) } else { set.remove(digest) }
        guard had != cleared else { return false }
        writer.update { $0.idleSlotsCleared = set.sorted() }
        writer.writeSoon()
        return true
    }

    /// Records whether the pipeline's router model is loaded (for `kvwarm status`); true when that changed.
    @discardableResult
    public func noteModelLoaded(_ loaded: Bool) -> Bool {
        let was = writer.state.modelUnloaded ?? false
        guard was == loaded else { return false }
        writer.update { $0.modelUnloaded = loaded ? nil : true }
        writer.writeSoon()
        return true
    }

    /// Whether the router reported the pipeline's model not loaded at the last check.
    public var modelUnloaded: Bool { writer.state.modelUnloaded ?? false }

    /// Whether the current backend was seen clearing idle slots.
    public var clearsIdleSlots: Bool {
        guard let digest = currentDigest else { return false }
        return (writer.state.idleSlotsCleared ?? []).contains(digest)
    }

    /// Applies what a pass found: a fingerprint it read, an ineffective restore, and, after a
    /// transient failure, that the server may have been replaced.
    public func apply(_ outcome: PassOutcome) {
        if let fp = outcome.fingerprintRead { record(fp) }
        if let digest = outcome.restoreIneffective, !restoreIneffective.contains(digest) {
            restoreIneffective.insert(digest)
            writer.update { $0.restoreIneffective = restoreIneffective.sorted() }
        }
        if case .backendFailed(let e) = outcome.result, e.isTransient {
            current = nil  // a restarted server may be another one: the next pass reads it again
        }
    }

    /// Forgets the fingerprint and the slot assignments (the backend went away).
    public func invalidate() {
        current = nil
        scheduler.reset()
        keeper.reset()
    }

    /// Forgets the slot assignments (the backend restarted: its slots are empty).
    public func restarted() {
        scheduler.reset()
        keeper.reset()
    }
}
