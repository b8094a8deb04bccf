import Foundation
import Testing
@testable import KVWarm

struct SHA256Tests {
    static func hex(_ s: String) -> String { HexEncoding.lowercase(SHA256.hash(data: Array(s.utf8))) }

    @Test func fipsVectors() {
        #expect(Self.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(HexEncoding.lowercase(SHA256.hash(data: [UInt8](repeating: 0x61, count: 1_000_000)))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Every length around the 56- and 64-byte padding edges, fed whole and in uneven pieces,
    /// against coreutils' sha256sum.
    @Test func paddingEdgesAndPiecewiseUpdatesMatchSha256sum() throws {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4097] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var h = SHA256()
            var i = 0
            var step = 1
            while i < n {
                let j = min(n, i + step)
                if step % 2 == 0 {
                    bytes[i..<j].withUnsafeBytes { h.update(bufferPointer: $0) }
                } else {
                    h.update(data: bytes[i..<j])
                }
                i = j
                step = step * 3 % 71 + 1
            }
            let piecewise = HexEncoding.lowercase(h.finalize())
            #expect(piecewise == HexEncoding.lowercase(SHA256.hash(data: bytes)), "length \(n)")
            #expect(piecewise == (try Self.sha256sum(bytes)), "length \(n)")
        }
    }

    static func sha256sum(_ bytes: [UInt8]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}
