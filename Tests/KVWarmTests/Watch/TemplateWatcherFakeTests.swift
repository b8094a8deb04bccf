import Foundation
import Logging
import SystemPackage
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// The watcher over ``FakeInotify``: failure paths no kernel produces on demand.
@Suite struct TemplateWatcherFakeTests {
    /// A real directory holding t.txt (the plan looks at the file system), its real path, and the set.
    private func fixture() throws -> (TemporaryDirectory, String, WatchSet) {
        let root = try TemporaryDirectory("kvwarm-watch-fake")
        try root.put("dir/t.txt", "a\n")
        try root.put("dir/u.txt", "a\n")
        let realDir = FileProbe.realpath(root.file("dir"))!
        let set = WatchSet(files: ["t": [root.file("dir/t.txt")], "u": [root.file("dir/u.txt")]])
        return (root, realDir, set)
    }

    private func running(_ fake: FakeInotify, _ set: WatchSet, logger: Logger = Logger(label: "kvwarm.test.watch"))
        throws -> (TemplateWatcher, Task<Void, any Error>)
    {
        let watcher = TemplateWatcher(syscalls: fake, logger: logger)
        try watcher.update(set)
        return (watcher, Task { try await watcher.run() })
    }

    @Test func watchesTheDirectoryNotTheFile() throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let watcher = TemplateWatcher(syscalls: fake, logger: Logger(label: "kvwarm.test.watch"))
        try watcher.update(set)
        #expect(fake.script.withLock { $0.addCalls } == [realDir])
    }

    /// An attribute-only event is reported apart from content events; in one batch with a
    /// content event for the same template it adds nothing.
    @Test func attributeOnlyEventsAreReportedApart() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let (watcher, task) = try running(fake, set)
        let wd = try #require(fake.wd(for: realDir))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["t"]))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.attrib, name: "t.txt")])
        #expect(try await nextChange(watcher.changes) == .attributes(["t"]))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.attrib, name: "t.txt"),
                      InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt"),
                      InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "x.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["t"]))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["t"]), "no .attributes left over from the mixed batch")
        task.cancel()
        try await task.value
    }

    @Test func interruptedReadAndPollAreRetried() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify { $0.pollErrors = [.interrupted] }
        fake.enqueue(.failure(.interrupted))
        let (watcher, task) = try running(fake, set)
        let wd = try #require(fake.wd(for: realDir))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["t"]))
        #expect(fake.script.withLock { $0.readCalls } >= 2)
        task.cancel()
        try await task.value
        #expect(fake.script.withLock { $0.closed })
    }

    @Test func watchLimitThrowsAndLogsAClearHint() throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify { $0.addWatchError = .noSpace }
        let recorder = WatchLogRecorder()
        let watcher = TemplateWatcher(syscalls: fake, logger: recorder.logger)
        #expect(throws: TemplateWatcherError.watchLimitReached(directory: realDir)) { try watcher.update(set) }
        do {
            try watcher.update(set)
        } catch {
            #expect("\(error)".contains("fs.inotify.max_user_watches"))
            #expect("\(error)".contains(realDir))
        }
        let errors = recorder.records.filter { $0.level == .error }
        #expect(!errors.isEmpty)
        for record in errors {
            #expect(record.metadata[LogField.stage] == .string(Stage.watch.rawValue))
            #expect(record.metadata[LogField.messageID] == .string(MessageID.watchError.rawValue))
            #expect(record.metadata[LogField.hint]?.description.contains("fs.inotify.max_user_watches") == true)
        }
    }

    @Test func instanceLimitThrowsNamingTheSysctl() throws {
        let (root, _, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify { $0.initializeError = .tooManyOpenFiles }
        let watcher = TemplateWatcher(syscalls: fake, logger: Logger(label: "kvwarm.test.watch"))
        #expect(throws: TemplateWatcherError.instanceLimitReached(.tooManyOpenFiles)) { try watcher.update(set) }
        #expect(TemplateWatcherError.instanceLimitReached(.tooManyOpenFiles).description.contains("max_user_instances"))
    }

    @Test func runFailsAndFinishesTheStreamWhenNoInstanceCanBeCreated() async throws {
        let fake = FakeInotify { $0.initializeError = .tooManyOpenFiles }
        let recorder = WatchLogRecorder()
        let watcher = TemplateWatcher(syscalls: fake, logger: recorder.logger)
        await #expect(throws: TemplateWatcherError.instanceLimitReached(.tooManyOpenFiles)) { try await watcher.run() }
        #expect(try await nextChange(watcher.changes) == nil)
        #expect(recorder.records.contains { $0.level == .error && $0.metadata[LogField.hint] != nil })
    }

    @Test func queueOverflowYieldsRescanAll() async throws {
        let (root, _, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let recorder = WatchLogRecorder()
        let (watcher, task) = try running(fake, set, logger: recorder.logger)
        fake.enqueue([InotifyEvent(wd: -1, mask: InotifyMask.queueOverflow)])
        #expect(try await nextChange(watcher.changes) == .rescanAll)
        #expect(recorder.records.contains {
            $0.level == .info && $0.metadata[LogField.messageID] == .string(MessageID.watchOverflow.rawValue)
        })
        task.cancel()
        try await task.value
    }

    @Test func oneReadIsCoalescedIntoOneChangeAndNoiseIsIgnored() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let recorder = WatchLogRecorder()
        let (watcher, task) = try running(fake, set, logger: recorder.logger)
        let wd = try #require(fake.wd(for: realDir))
        fake.enqueue([
            InotifyEvent(wd: wd, mask: InotifyMask.create, name: "sedX1y2Z3"),
            InotifyEvent(wd: wd, mask: InotifyMask.movedFrom, cookie: 7, name: "sedX1y2Z3"),
            InotifyEvent(wd: wd, mask: InotifyMask.movedTo, cookie: 7, name: "t.txt"),
            InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "u.txt"),
            InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt"),
        ])
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.create, name: "4913")])
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "u.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["t", "u"]))
        #expect(try await nextChange(watcher.changes) == .templates(["u"]))  // the "4913" read yielded nothing
        let raw = recorder.records.filter { $0.metadata[LogField.messageID] == .string(MessageID.watchEvent.rawValue) && $0.message == "inotify event" }
        #expect(raw.count == 7)
        #expect(raw.allSatisfy { $0.level == .debug })
        task.cancel()
        try await task.value
    }

    @Test func dotDotNamesConcernEveryTemplateInTheDirectory() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let (watcher, task) = try running(fake, set)
        let wd = try #require(fake.wd(for: realDir))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.movedTo, cookie: 3, name: "..data")])
        #expect(try await nextChange(watcher.changes) == .templates(["t", "u"]))
        task.cancel()
        try await task.value
    }

    @Test func deletedDirectoryWatchIsDroppedAndReAdded() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let (watcher, task) = try running(fake, set)
        let wd = try #require(fake.wd(for: realDir))
        // The directory still exists on disk, as if it had been recreated at once.
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.deleteSelf), InotifyEvent(wd: wd, mask: InotifyMask.ignored)])
        #expect(try await nextChange(watcher.changes) == .templates(["t", "u"]))
        let newWD = try #require(fake.wd(for: realDir))
        #expect(newWD != wd)
        #expect(fake.script.withLock { $0.removed } == [wd])
        // Events on the stale wd are ignored; the new one works.
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt")])
        fake.enqueue([InotifyEvent(wd: newWD, mask: InotifyMask.closeWrite, name: "u.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["u"]))
        task.cancel()
        try await task.value
    }

    @Test func updateWhileRunningReconcilesWatches() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        try root.put("other/v.txt", "v\n")
        let otherDir = FileProbe.realpath(root.file("other"))!
        let fake = FakeInotify()
        let (watcher, task) = try running(fake, set)
        let oldWD = try #require(fake.wd(for: realDir))
        try watcher.update(WatchSet(files: ["v": [root.file("other/v.txt")]]))
        #expect(fake.script.withLock { $0.removed } == [oldWD])
        let wd = try #require(fake.wd(for: otherDir))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "v.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["v"]))
        task.cancel()
        try await task.value
    }

    @Test func overflowRefreshesWatchesAndReplacesStaleOnes() async throws {
        let (root, realDir, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let (watcher, task) = try running(fake, set)
        let oldWD = try #require(fake.wd(for: realDir))
        // The directory was replaced during the overflow gap; its IN_IGNORED was lost.
        fake.replace(realDir)
        fake.enqueue([InotifyEvent(wd: -1, mask: InotifyMask.queueOverflow)])
        #expect(try await nextChange(watcher.changes) == .rescanAll)
        let newWD = try #require(fake.wd(for: realDir))
        #expect(newWD != oldWD)
        #expect(fake.script.withLock { $0.removed } == [oldWD])
        #expect(fake.script.withLock { $0.addCalls.filter { $0 == realDir }.count } == 2)
        fake.enqueue([InotifyEvent(wd: oldWD, mask: InotifyMask.closeWrite, name: "t.txt")])
        fake.enqueue([InotifyEvent(wd: newWD, mask: InotifyMask.closeWrite, name: "u.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["u"]))
        task.cancel()
        try await task.value
    }
}
