/// Lowercase hex of digest bytes (without Foundation's `String(format:)`, which
/// cost more than the SHA-256 itself when checking 10,000 templates).
enum HexEncoding {
    private static let digits = Array("0123456789abcdef".utf8)

    static func lowercase<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
