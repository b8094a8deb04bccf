import Foundation
import Synchronization
import SystemPackage
import Testing
@testable import KVWarm
import KVWarmTestSupport

struct SystemSeamTests {
    @Test func fileSystemCreatesListsReadsMovesAndRemoves() throws {
        let root = try TemporaryDirectory("kvwarm-fs")
        defer { root.remove() }
        let deep = root.file("a/b/c")
        try FileSystem.createDirectory(deep, intermediates: true, mode: 0o700)
        try FileSystem.createDirectory(deep, intermediates: true)  // existing: fine
        #expect(FileSystem.isDirectory(deep))
        var st = stat()
        #expect(stat(deep, &st) == 0 && st.st_mode & 0o777 == 0o700)
        try FileSystem.write(Array("hello".utf8), to: deep + "/f", mode: 0o600)
        #expect(FileSystem.contents(deep + "/f") == Array("hello".utf8))
        #expect(FileSystem.contents(deep) == nil, "a directory is not a file")
        #expect(FileSystem.contents(deep + "/missing") == nil)
        #expect(try FileSystem.list(deep) == ["f"])
        try FileSystem.move(deep + "/f", to: deep + "/g")
        #expect(!FileSystem.exists(deep + "/f") && FileSystem.isReadable(deep + "/g"))
        try FileSystem.remove(deep + "/g")
        #expect(try FileSystem.list(deep).isEmpty)
        #expect(throws: Errno.noSuchFileOrDirectory) { try FileSystem.list(deep + "/nope") }
        #expect(throws: Errno.notDirectory) {
            try FileSystem.write([], to: root.file("plain"))
            try FileSystem.createDirectory(root.file("plain/x"), intermediates: true)
        }
    }

    @Test func largeFilesAreReadWhole() throws {
        let root = try TemporaryDirectory("kvwarm-fs")
        defer { root.remove() }
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try FileSystem.write(bytes, to: root.file("big"))
        #expect(try FileSystem.read(root.file("big")) == bytes)
    }

    @Test func environmentMatchesGetenv() {
        let env = ProcessEnvironment.current
        #expect(env["PATH"] == ProcessInfo.processInfo.environment["PATH"])
        #expect(env.count == ProcessInfo.processInfo.environment.count)
    }

    @Test func osThreadRunsTheBodyUnderItsName() async throws {
        let seen = Mutex<String?>(nil)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            do {
                try OSThread.detach(name: "kvwarm-test-thread-long-name") {
                    let comm = FileSystem.contents("/proc/thread-self/comm").map { String(decoding: $0, as: UTF8.self) }
                    seen.withLock { $0 = comm?.trimmingWhiteSpace() }
                    done.resume()
                }
            } catch {
                Issue.record("pthread_create failed: \(error)")
                done.resume()
            }
        }
        #expect(seen.withLock { $0 } == "kvwarm-test-thr", "the kernel keeps 15 bytes")
    }

    @Test func trimmingAndFixedDecimals() {
        #expect("  \t key \n".trimmingWhiteSpace() == "key")
        #expect(" \n ".trimmingWhiteSpace() == "")
        #expect(PrometheusText.fixed3(1.23456) == "1.235")
        #expect(PrometheusText.fixed3(-0.5) == "-0.500")
        #expect(PrometheusText.fixed3(0.0004) == "0.000")
        #expect(PrometheusText.number(2.5) == String(format: "%.3f", 2.5))
    }
}
