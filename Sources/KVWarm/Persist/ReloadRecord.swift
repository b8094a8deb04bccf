import FoundationEssentials
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
        FileSystem.contents(directory + "/" + fileName)
            .flatMap { try? JSONDecoder().decode(ReloadRecord.self, from: Data($0)) }
    }

    /// Leaves a request with a fresh token in `directory`; returns the token.
    public static func request(directory: String) throws -> String {
        var rng = SystemRandomNumberGenerator()
        let token = HexEncoding.lowercase((0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let dir = directory + "/" + requestsDirectory
        try FileSystem.createDirectory(dir, intermediates: true, mode: 0o700)
        try FileSystem.write([], to: dir + "/" + token, mode: 0o600)
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
        let names = ((try? FileSystem.list(dir)) ?? []).sorted()
        for n in names { try? FileSystem.remove(dir + "/" + n) }
        return names
    }

    /// Writes the record of a reload that covered `requests`, through a temporary file and rename.
    public func ended(requests: [String], ok: Bool, message: String) {
        let n = generation.withLock { $0 += 1; return $0 }
        guard let data = try? JSONEncoder().encode(ReloadRecord(generation: n, requests: requests, ok: ok, message: message))
        else { return }
        let tmp = directory + "/." + ReloadRecord.fileName + ".tmp"
        guard (try? FileSystem.write(Array(data), to: tmp, mode: 0o600)) != nil else { return }
        try? FileSystem.move(tmp, to: directory + "/" + ReloadRecord.fileName)
    }
}
