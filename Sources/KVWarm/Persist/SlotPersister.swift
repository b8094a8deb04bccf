
#if canImport(Glibc)
import Glibc
#endif

/// Saves a warmed slot to a KV file and keeps the slot directory tidy.
///
/// With `backend.slot_save_dir` known, the server writes `….bin.partial`,
/// kvwarm checks `n_saved` and renames it to the final name, so a truncated
/// file never carries a name kvwarm would restore. Without it the server
/// writes the final name directly and `n_saved`/`n_written` are the check.
public struct SlotPersister: Sendable {
    public let client: LlamaClient
    public let slotSaveDir: String?

    public init(client: LlamaClient, slotSaveDir: String?) {
        self.client = client
        self.slotSaveDir = slotSaveDir
    }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case backend(BackendError)
        /// `n_saved` differs from the prompt's token count (after one redo).
        case shortSave(saved: Int, expected: Int)
        case rename(String)

        public var description: String {
            switch self {
            case .backend(let e): e.description
            case .shortSave(let s, let e): "the server saved \(s) tokens, expected \(e)"
            case .rename(let m): m
            }
        }

        public var reason: String {
            switch self {
            case .backend(let e): e.reason
            case .shortSave: "short_save"
            case .rename: "rename_failed"
            }
        }
    }

    public struct Saved: Sendable, Equatable {
        public var fileName: String
        public var tokens: Int
        public var bytes: Int
        public var durationMS: Double
    }

    /// Saves `slot` as `fileName`, expecting `expectedTokens`; `redo` re-warms the slot once when the count is off.
    public func save(slot: Int, fileName: String, expectedTokens: Int,
                     redo: @Sendable () async throws(BackendError) -> Int) async throws(Failure) -> Saved {
        let started = ContinuousClock.now
        var slot = slot
        let target = slotSaveDir == nil ? fileName : SlotFileNaming.partialName(of: fileName)
        var result: LlamaClient.SaveResult
        do {
            result = try await client.saveSlot(slot, fileName: target)
            if result.savedTokens != expectedTokens {
                // e.g. another task launched first and the server moved the slot to its RAM cache
                slot = try await redo()
                result = try await client.saveSlot(slot, fileName: target)
            }
        } catch {
            removePartial(target)
            throw .backend(error)
        }
        guard result.savedTokens == expectedTokens, result.bytesWritten > 0 else {
            removePartial(target)
            throw .shortSave(saved: result.savedTokens, expected: expectedTokens)
        }
        if let dir = slotSaveDir {
            guard rename(dir + "/" + target, dir + "/" + fileName) == 0 else {
                let why = String(cString: strerror(errno))
                removePartial(target)
                throw .rename("cannot rename \(target) in \(dir): \(why) (kvwarm needs write access to backend.slot_save_dir)")
            }
        }
        return Saved(fileName: fileName, tokens: result.savedTokens, bytes: result.bytesWritten,
                     durationMS: started.duration(to: .now).milliseconds)
    }

    private func removePartial(_ name: String) {
        guard let dir = slotSaveDir, name.hasSuffix(".partial") else { return }
        unlink(dir + "/" + name)
    }

    /// Whether a KV file exists; nil when kvwarm cannot see the slot directory.
    public func exists(_ fileName: String) -> Bool? {
        guard let dir = slotSaveDir else { return nil }
        return FileSystem.exists(dir + "/" + fileName)
    }

    /// Removes a superseded KV file of kvwarm's naming.
    public func remove(_ fileName: String) {
        guard let dir = slotSaveDir, SlotFileNaming.isKVWarmFile(fileName) else { return }
        unlink(dir + "/" + fileName)
    }

    /// Removes the kvwarm-named files with a stem in `stems` (``SlotFileNaming/stem(template:model:)``)
    /// that are not in `keep`, and their partial saves. Returns what was removed. Files of other
    /// stems are left alone: another kvwarm (another config, backend or model) may share the slot directory.
    @discardableResult
    public func sweepOrphans(keep: Set<String>, stems: Set<String>) -> [String] {
        guard let dir = slotSaveDir,
              let names = try? FileSystem.list(dir) else { return [] }
        let owned = stems
        var removed: [String] = []
        for name in names.sorted() {
            guard let stem = SlotFileNaming.templateStem(of: name), owned.contains(stem) else { continue }
            if SlotFileNaming.isPartial(name) || !keep.contains(name) {
                if unlink(dir + "/" + name) == 0 { removed.append(name) }
            }
        }
        return removed
    }
}
