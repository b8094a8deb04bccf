import CSystemd
import Glibc

/// Where the journal log handler delivers a finished record.
///
/// Production uses ``SystemdJournalSink``; tests inject a recording sink so
/// they can assert the exact fields without a running journald.
public protocol JournalSink: Sendable {
    /// Sends one journal entry made of `NAME=value` assignments.
    ///
    /// - Parameter fields: field names (already valid journal field names) and raw value bytes.
    ///   Values may contain newlines or any other bytes.
    /// - Returns: `0` on success (also when journald's socket is absent), a negative errno on failure,
    ///   as `sd_journal_sendv` does.
    func send(_ fields: [(String, [UInt8])]) -> Int32
}

/// Sends records to journald with libsystemd's `sd_journal_sendv`.
///
/// Each field becomes one `iovec` holding `NAME=value`; `sd_journal_sendv` handles values that
/// contain newlines (it switches to the binary-safe length-prefixed form itself).
/// Called from Swift, `sd_journal_sendv` binds to the real function rather than the C macro, so
/// it adds no `CODE_*` fields; ``JournalLogHandler`` adds them.
public struct SystemdJournalSink: JournalSink {
    /// Creates the sink. It holds no state; every call opens nothing and is thread-safe.
    public init() {}

    public func send(_ fields: [(String, [UInt8])]) -> Int32 {
        if fields.isEmpty { return 0 }
        // One contiguous buffer holding every assignment, plus their offsets, so all
        // iovec base pointers stay valid for the duration of the call.
        var buffer: [UInt8] = []
        buffer.reserveCapacity(fields.reduce(0) { $0 + $1.0.utf8.count + 1 + $1.1.count })
        var ranges: [(Int, Int)] = []
        ranges.reserveCapacity(fields.count)
        for (name, value) in fields {
            let start = buffer.count
            buffer.append(contentsOf: name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: value)
            ranges.append((start, buffer.count - start))
        }
        return buffer.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            var iov = ranges.map { iovec(iov_base: base + $0.0, iov_len: $0.1) }
            return iov.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
