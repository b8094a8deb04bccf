import Logging
import Synchronization

/// Writes a pass's ``StageEvent``s as journald records, with the same messages and fields
/// for every stage.
///
/// A rejected API key is logged at error level once; later rejections go to debug, so a
/// wrong key does not fill the journal with one record per template and retry.
public final class StageLog: Sendable {
    public let logger: Logger
    private let credentialReported = Mutex(false)

    public init(logger: Logger) { self.logger = logger }

    /// Logs one event of template `name`.
    public func write(_ event: StageEvent, template name: String) { write(event, name) }

    /// `name` was queued while `current`'s pass has run for `elapsed`.
    public func queued(_ name: String, behind current: String, for elapsed: Duration) {
        let seconds = Int(elapsed.milliseconds / 1000)
        let message = current == name
            ? "changed while its warm runs (\(seconds) s so far): warms again after it"
            : "queued behind \(current) (warming for \(seconds) s)"
        logger.info("\(message)",
                    metadata: .stage(.warm, .warmQueued, template: name, ["BEHIND": .string(current)]))
    }

    /// The pass of `name` has run for `elapsed` and goes on.
    public func stillWarming(_ name: String, for elapsed: Duration) {
        let ms = Int(elapsed.milliseconds)
        logger.notice("still warming \(name): \(ms / 1000) s", metadata: .stage(.warm, .warmProgress, template: name, [
            LogField.durationMS: .stringConvertible(ms),
        ]))
    }

    /// `name` is warm again after its last pass had failed with `problem`. The record has no
    /// `OUTCOME`, so counting `STAGE=warm OUTCOME=ok` still counts warms.
    public func recovered(_ name: String, after problem: String) {
        logger.notice("warm again; the earlier failure is resolved (\(problem))",
                      metadata: .stage(.warm, .warmDone, template: name, [LogField.reason: .string("recovered")]))
    }

    /// Shutdown cut the pass of `name` short; `waiting` were queued and never started.
    public func cutShort(_ name: String, waiting: [String]) {
        var message = "stopping: the warm of \(name) was cut short; it warms at the next start"
        if !waiting.isEmpty { message += "; not started: \(waiting.joined(separator: ", "))" }
        logger.notice("\(message)", metadata: .stage(.shutdown, .shutdown, template: name, [
            LogField.outcome: .string(Outcome.failed.rawValue), LogField.reason: .string("cancelled"),
        ]))
    }

    /// A retry of `name` is scheduled after `delay`.
    public func retrying(_ name: String, reason: String, after delay: Duration, attempt: Int) {
        let ms = Int(delay.milliseconds)
        let after = ms < 1000 ? "\(ms) ms" : "\(ms / 1000).\(ms % 1000 / 100) s"
        logger.info("retrying in \(after) (attempt \(attempt)): \(reason)", metadata: .stage(.warm, .warmFailed, template: name, [
            LogField.reason: .string(reason),
            "RETRY_IN_MS": .stringConvertible(Int(delay.milliseconds)), "ATTEMPT": .stringConvertible(attempt),
        ]))
    }

    private func fields(_ stage: Stage, _ id: MessageID, _ name: String, _ outcome: Outcome?,
                        _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var m = Logger.Metadata.stage(stage, id, template: name, extra)
        if let outcome { m[LogField.outcome] = .string(outcome.rawValue) }
        return m
    }

    private func write(_ event: StageEvent, _ name: String) {
        switch event {
        case .templateInvalid(let problem, let path):
            logger.error("template cannot be used: \(problem)", metadata: fields(.hash, .templateInvalid, name, .failed, [
                LogField.reason: .string(problem.reason), LogField.path: .string(path),
            ]))
        case .hashCompared(let unchanged, let digest, let plan):
            var extra: Logger.Metadata = [
                LogField.digest: .string(String(digest.prefix(12))), LogField.mode: .string(plan.mode.rawValue),
            ]
            if case .prefill(let why) = plan { extra[LogField.reason] = .string(why) }
            let message = switch plan {
            case .restore(let file): "content unchanged: restoring \(file)"
            case .prefill(let why): unchanged ? "content unchanged, but \(why): prefilling" : "\(why): prefilling"
            }
            logger.info("\(message)", metadata: fields(.hash, .hashCompared, name, unchanged ? .unchanged : .changed, extra))
        case .sentinelLost(let why):
            logger.error("\(why)", metadata: fields(.render, .renderFailed, name, .failed, [
                LogField.reason: .string("sentinel_lost"),
            ]))
        case .renderRejected(let why):
            logger.error("\(why)", metadata: fields(.render, .renderFailed, name, .failed, [
                LogField.reason: .string("request_rejected"),
                LogField.hint: .string("tools need llama-server started with --jinja; fix the field the message names"),
            ]))
        case .samePrefix(let file):
            logger.info("the files changed, but the server renders the same prompt: restoring \(file)",
                        metadata: fields(.render, .rendered, name, .unchanged, [
                            LogField.mode: .string(WarmMode.restore.rawValue), LogField.kvFile: .string(file),
                        ]))
        case .rendered(let chars, let placeholder):
            logger.debug("rendered warm prompt", metadata: fields(.render, .rendered, name, .ok, [
                "PROMPT_CHARS": .stringConvertible(chars), "PLACEHOLDER": .string(placeholder ? "yes" : "no"),
            ]))
        case .restoreIneffective(let cached, let of):
            logger.warning("restore did not take: the probe reused \(cached) of \(of) tokens; prefilled instead",
                           metadata: fields(.warm, .restoreIneffective, name, .ineffective, [
                               LogField.reason: .string("restore_ineffective"),
                               LogField.hint: .string("serve SWA models (e.g. Gemma 3) with --swa-full to make slot restores work; kvwarm will prefill under this backend from now on"),
                               LogField.cachedTokens: .stringConvertible(cached),
                               LogField.promptTokens: .stringConvertible(of),
                           ]))
        case .warmed(let report, let digest):
            var extra: Logger.Metadata = [
                LogField.mode: .string(report.mode.rawValue),
                LogField.digest: .string(String(digest.prefix(12))),
                LogField.durationMS: .stringConvertible(Int(report.durationMS.rounded())),
                LogField.promptTokens: .stringConvertible(report.promptTokens),
                LogField.cachedTokens: .stringConvertible(report.cachedTokens),
                LogField.slot: .stringConvertible(report.slot),
            ]
            if case .refused(let why) = report.fallback {
                extra[LogField.reason] = .string("restore_refused")
                extra[LogField.hint] = .string("restore refused (\(why)); prefilled instead")
            }
            logger.info("warmed by \(report.mode.rawValue) in \(Int(report.durationMS)) ms: \(report.cachedTokens) of \(report.promptTokens) tokens came from cache (slot \(report.slot))",
                        metadata: fields(.warm, .warmDone, name, .ok, extra))
        case .fewTokens(let n):
            logger.warning("only \(n) tokens precede <{message}>: warming saves little",
                           metadata: fields(.render, .rendered, name, nil, [
                               LogField.promptTokens: .stringConvertible(n),
                               LogField.hint: .string("move <{message}> towards the end of the template"),
                           ]))
        case .persisted(let saved):
            logger.info("saved \(saved.tokens) tokens to \(saved.fileName) in \(Int(saved.durationMS.rounded())) ms", metadata: fields(.persist, .persisted, name, .ok, [
                LogField.kvFile: .string(saved.fileName), LogField.promptTokens: .stringConvertible(saved.tokens),
                LogField.durationMS: .stringConvertible(Int(saved.durationMS.rounded())),
            ]))
        case .persistFailed(let error):
            var hint = "the template is warm in memory but will re-prefill after a restart"
            if case .backend(.unsupported) = error { hint = "start llama-server with --slot-save-path to let kvwarm restore after restarts" }
            logger.error("KV save failed: \(error)", metadata: fields(.persist, .persistFailed, name, .failed, [
                LogField.reason: .string(error.reason), LogField.hint: .string(hint),
            ]))
        case .backendFailed(let stage, let error):
            let id: MessageID = error == .unauthorized ? .credentialRejected : .warmFailed
            var meta = fields(stage, id, name, .failed, [LogField.reason: .string(error.reason)])
            let message = "warm failed at \(stage.rawValue): \(error)"
            if error == .unauthorized {
                meta[LogField.hint] = .string("set backend.api_key_file to the key llama-server was started with (--api-key)")
                let first = credentialReported.withLock { reported in
                    defer { reported = true }
                    return !reported
                }
                if first {
                    logger.error("\(message)", metadata: meta)
                } else {
                    logger.debug("\(message)", metadata: meta)
                }
            } else {
                logger.error("\(message)", metadata: meta)
            }
        }
    }
}
