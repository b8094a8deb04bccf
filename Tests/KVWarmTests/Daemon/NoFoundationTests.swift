import Foundation
import Testing

/// The daemon is built without Foundation proper and swift-crypto (issue 17: their pages
/// were half of an idle kvwarm's memory). A source that imports either again fails here,
/// before a benchmark would notice.
struct NoFoundationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func noShippedSourceImportsFoundationOrCrypto() throws {
        let sources = Self.root.appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") }
        #expect(files.count > 100, "found the sources: \(files.count)")
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").filter { !$0.hasPrefix("@") }
                guard words.first == "import" || words.dropFirst().first == "import" else { continue }
                let module = String(words.last ?? "")
                #expect(module != "Foundation" && module != "Crypto" && module != "CryptoKit",
                        "\(file): \(line)")
            }
        }
    }

    @Test func thePackageDependsOnNoCryptoLibrary() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(!manifest.contains("swift-crypto"))
        #expect(manifest.contains("pack-relative-relocs"), "the lean link flags are in the manifest")
    }
}
