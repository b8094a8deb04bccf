import Logging
import Synchronization
@testable import KVWarm

/// Records every journal entry instead of sending it.
final class RecordingJournalSink: JournalSink {
    private let entries = Mutex<[[(String, [UInt8])]]>([])
    private let result: Int32

    init(result: Int32 = 0) { self.result = result }

    func send(_ fields: [(String, [UInt8])]) -> Int32 {
        entries.withLock { $0.append(fields) }
        return result
    }

    /// The entries as `(name, text)` lists.
    var records: [[(String, String)]] {
        entries.withLock { $0.map { $0.map { ($0.0, String(decoding: $0.1, as: UTF8.self)) } } }
    }

    /// The last entry's fields; a field's last value wins.
    var last: [String: String] {
        Dictionary(records.last ?? [], uniquingKeysWith: { _, b in b })
    }
}

/// Records every line instead of writing it.
final class RecordingOutput: LogOutput {
    private let storage = Mutex<[String]>([])
    func writeLine(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}
