import Foundation
import Synchronization

/// How the daemon's last reload ended, in `state_dir/kvwarm.reload`, for `kvwarm reload`
/// (systemd's `ExecReload=`).
///
/// `kvwarm reload` leaves a request file (a fresh token) in `state_dir/kvwarm.reload-requests/`,
/// then sends SIGHUP. The reload that covers the signal takes the requests present once its
/// signal burst is over (so after the signal, and after the file was written) and names them
/// in its record; the command waits for a record with its token.
public struct ReloadRecord: Sendable, Equatable, Codable {
    public static let fileName = "kvwarm.reload"
    public static let requestsDirectory = "kvwarm.reload-requests"

    /// Reloads since the daemon started, this one included.
    public var generation: Int
    /// The request tokens this reload covered.
    public var requests: [String]
    public var ok: Bool
    /// STATUS after the reload, or why it was rejected.
    public var message: String

    public init(generation: Int, requests: [String], ok: Bool, message: String) {
        self.generation = generation
        self.requests = requests
        self.ok = ok
        self.message = message
    }

    /// The record in `directory`, if there is a readable one.
    public static func read(directory: String) -> ReloadRecord? {
        FileManager.default.contents(atPath: directory + "/" + fileName)
            .flatMap { try? JSONDecoder().decode(ReloadRecord.self, from: $0) }
    }

    /// Leaves a request with a fresh token in `directory`; returns the token.
    public static func request(directory: String) throws -> String {
        let token = UUID().uuidString.lowercased()
        let dir = directory + "/" + requestsDirectory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        guard FileManager.default.createFile(atPath: dir + "/" + token, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: dir + "/" + token])
        }
        return token
    }
}

/// The daemon's side of ``ReloadRecord``: takes the pending requests when a reload begins and
/// writes the record when it ends.
public final class ReloadRecorder: Sendable {
    public let directory: String
    private let generation = Mutex(0)

    public init(directory: String) { self.directory = directory }

    /// Removes and returns the pending request tokens.
    public func takeRequests() -> [String] {
        let dir = directory + "/" + ReloadRecord.requestsDirectory
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        for n in names { try? FileManager.default.removeItem(atPath: dir + "/" + n) }
        return names
    }

    /// Writes the record of a reload that covered `requests`, through a temporary file and rename.
    public func ended(requests: [String], ok: Bool, message: String) {
        let n = generation.withLock { $0 += 1; return $0 }
        guard let data = try? JSONEncoder().encode(ReloadRecord(generation: n, requests: requests, ok: ok, message: message))
        else { return }
        let tmp = directory + "/." + ReloadRecord.fileName + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else { return }
        _ = rename(tmp, directory + "/" + ReloadRecord.fileName)
    }
}
