import Testing
@testable import KVWarm
import KVWarmTestSupport

@Suite struct WatchInotifyEventParserTests {
    /// Appends a record the way the kernel lays it out, with an explicit `len` (padding included).
    private func record(_ out: inout [UInt8], wd: Int32, mask: UInt32, cookie: UInt32, name: [UInt8], len: Int) {
        withUnsafeBytes(of: wd.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: mask.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: cookie.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(len).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: name)
        out.append(contentsOf: [UInt8](repeating: 0, count: len - name.count))
    }

    @Test func parsesSeveralEventsWithNulPaddedNames() {
        var buffer: [UInt8] = []
        record(&buffer, wd: 1, mask: 0x40, cookie: 77, name: Array("sedAb12Cd".utf8), len: 16)
        record(&buffer, wd: 1, mask: 0x80, cookie: 77, name: Array("t.txt".utf8), len: 16)
        record(&buffer, wd: 2, mask: 0x400, cookie: 0, name: [], len: 0)            // DELETE_SELF, no name
        record(&buffer, wd: -1, mask: 0x4000, cookie: 0, name: [], len: 0)          // Q_OVERFLOW
        record(&buffer, wd: 3, mask: 0x8, cookie: 0, name: Array("prompt-ü.txt".utf8), len: 32)
        #expect(buffer.count == 16 * 5 + 16 + 16 + 32)
        let events = InotifyEventParser.parse(buffer)
        #expect(events == [
            InotifyEvent(wd: 1, mask: InotifyMask.movedFrom, cookie: 77, name: "sedAb12Cd"),
            InotifyEvent(wd: 1, mask: InotifyMask.movedTo, cookie: 77, name: "t.txt"),
            InotifyEvent(wd: 2, mask: InotifyMask.deleteSelf, cookie: 0, name: ""),
            InotifyEvent(wd: -1, mask: InotifyMask.queueOverflow, cookie: 0, name: ""),
            InotifyEvent(wd: 3, mask: InotifyMask.closeWrite, cookie: 0, name: "prompt-ü.txt"),
        ])
    }

    @Test func dropsATruncatedTrailingRecord() {
        var buffer: [UInt8] = []
        record(&buffer, wd: 1, mask: 0x8, cookie: 0, name: Array("a".utf8), len: 16)
        record(&buffer, wd: 1, mask: 0x8, cookie: 0, name: Array("b".utf8), len: 16)
        let events = InotifyEventParser.parse(Array(buffer.dropLast(4)))
        #expect(events == [InotifyEvent(wd: 1, mask: InotifyMask.closeWrite, name: "a")])
        #expect(InotifyEventParser.parse(Array(buffer.prefix(10))) == [])
    }

    @Test func encodeRoundTrips() {
        let events = [
            InotifyEvent(wd: 4, mask: InotifyMask.create | InotifyMask.isDir, cookie: 0, name: "..2024_v1"),
            InotifyEvent(wd: 4, mask: InotifyMask.ignored),
            InotifyEvent(wd: 5, mask: InotifyMask.attrib, name: "abc"),
        ]
        let bytes = InotifyEventParser.encode(events)
        #expect(bytes.count % 4 == 0)
        #expect(InotifyEventParser.parse(bytes) == events)
    }

    @Test func watchMaskHasNoModifyAndCoversRenames() {
        let m = InotifyMask.directoryWatch
        #expect(m & InotifyMask.modify == 0)
        for bit in [InotifyMask.closeWrite, InotifyMask.movedTo, InotifyMask.movedFrom, InotifyMask.create,
                    InotifyMask.delete, InotifyMask.attrib, InotifyMask.deleteSelf, InotifyMask.moveSelf,
                    InotifyMask.onlyDir] {
            #expect(m & bit == bit)
        }
    }

    @Test func pathNameHelpers() {
        #expect(LexicalPath.split("/a/b/c.txt") == ("/a/b", "c.txt"))
        #expect(LexicalPath.split("/c.txt") == ("/", "c.txt"))
        #expect(LexicalPath.normalize("//a/./b//") == "/a/b")
        #expect(LexicalPath.absolute("..data/t.txt", relativeTo: "/cm") == "/cm/..data/t.txt")
        #expect(LexicalPath.absolute("/x/y", relativeTo: "/cm") == "/x/y")
        // One `..` rule for config, include and watched paths: folded lexically.
        #expect(LexicalPath.absolute("../x/t.txt", relativeTo: "/a/b") == "/a/x/t.txt")
        #expect(LexicalPath.split("/a/b/../c.txt") == ("/a", "c.txt"))
        #expect(LexicalPath.normalize("/../a") == "/a")
    }
}
