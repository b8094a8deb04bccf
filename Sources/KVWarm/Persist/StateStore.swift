import FoundationEssentials
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Reads and atomically writes `state.json` in the state directory.
///
/// A write goes to a temporary file in the same directory, is fsynced,
/// renamed over `state.json`, and the directory is fsynced: a crash at any
/// point leaves either the old or the new file, never a mix.
public struct StateStore: Sendable {
    public let directory: String
    /// `state.json`, or a pipeline's own file (``PipelineKey/stateFileName``).
    public let fileName: String
    public var path: String { directory + "/" + fileName }
    var tempPrefix: String { fileName + ".tmp-" }

    public init(directory: String, fileName: String = "state.json") {
        self.directory = directory
        self.fileName = fileName
    }

    public enum LoadResult: Sendable {
        case loaded(WarmState)
        case absent
        /// Unreadable or of another schema; moved aside to `movedTo`.
        case discarded(reason: String, movedTo: String?)
    }

    /// Creates the directory (0700) if needed and removes temporary files left by a crash.
    public func prepare() throws {
        if !FileSystem.exists(directory) {
            try FileSystem.createDirectory(directory, intermediates: true, mode: 0o700)
        }
        for name in (try? FileSystem.list(directory)) ?? [] where name.hasPrefix(tempPrefix) {
            try? FileSystem.remove(directory + "/" + name)
        }
    }

    public func load() -> LoadResult {
        guard let data = FileSystem.contents(path) else { return .absent }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            let state = try decoder.decode(WarmState.self, from: Data(data))
            guard state.schemaVersion == WarmState.currentSchema else {
                return .discarded(reason: "schema \(state.schemaVersion), expected \(WarmState.currentSchema)",
                                  movedTo: moveAside())
            }
            return .loaded(state)
        } catch {
            return .discarded(reason: "cannot parse: \(error)", movedTo: moveAside())
        }
    }

    /// The state file's content when it is readable and of the current schema; nil otherwise.
    /// Unlike ``load()`` it never moves the file.
    public func peek() -> WarmState? {
        guard let data = FileSystem.contents(path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let state = try? decoder.decode(WarmState.self, from: Data(data)),
              state.schemaVersion == WarmState.currentSchema else { return nil }
        return state
    }

    private func moveAside() -> String? {
        let target = path + ".unreadable"
        return (try? FileSystem.move(path, to: target)) != nil ? target : nil
    }

    /// Encodes `state` deterministically (sorted keys).
    public static func encode(_ state: WarmState) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(state)) + [0x0A]
    }

    /// Writes `state` atomically.
    public func save(_ state: WarmState) throws {
        let bytes = try Self.encode(state)
        let tmp = directory + "/" + tempPrefix + String(getpid())
        let fd = try FileDescriptor.open(FilePath(tmp), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite])
        do {
            try fd.closeAfter {
                _ = try fd.writeAll(bytes)
                guard fsync(fd.rawValue) == 0 else { throw Errno(rawValue: errno) }
            }
            guard rename(tmp, path) == 0 else { throw Errno(rawValue: errno) }
        } catch {
            unlink(tmp)
            throw error
        }
        let dirFD = try FileDescriptor.open(FilePath(directory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? dirFD.close() }
        _ = fsync(dirFD.rawValue)
    }
}
