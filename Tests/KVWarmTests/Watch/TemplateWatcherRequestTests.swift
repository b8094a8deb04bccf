import Foundation
import Logging
import SystemPackage
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// ``TemplateWatcher/request(_:)`` and planning outside the lock, over ``FakeInotify`` and a
/// ``GatedPlanner`` that holds a planning on demand.
@Suite(.timeLimit(.minutes(1))) struct TemplateWatcherRequestTests {
    /// dir/t.txt and dir/u.txt (templates t, u) and other/v.txt, on disk; the real paths of dir and other.
    private func fixture() throws -> (TemporaryDirectory, dir: String, other: String, WatchSet) {
        let root = try TemporaryDirectory("kvwarm-watch-request")
        try root.put("dir/t.txt", "a\n")
        try root.put("dir/u.txt", "a\n")
        try root.put("other/v.txt", "v\n")
        let set = WatchSet(files: ["t": [root.file("dir/t.txt")], "u": [root.file("dir/u.txt")]])
        return (root, FileProbe.realpath(root.file("dir"))!, FileProbe.realpath(root.file("other"))!, set)
    }

    private func started(
        _ fake: FakeInotify, _ planner: GatedPlanner, _ set: WatchSet,
        logger: Logger = Logger(label: "kvwarm.test.watch")
    ) throws -> (TemplateWatcher, Task<Void, any Error>) {
        let watcher = TemplateWatcher(syscalls: fake, logger: logger, planner: planner.planner)
        try watcher.update(set)
        return (watcher, Task { try await watcher.run() })
    }

    /// While `update` is stuck building a plan, the reader still maps an event: the plan is not
    /// built under the lock the reader needs. (Planning under the lock, as before, times out here.)
    @Test func readerProceedsWhileUpdatePlans() async throws {
        let (root, dir, other, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let (watcher, task) = try started(fake, planner, set)
        let wd = try #require(fake.wd(for: dir))
        let bigger = WatchSet(files: set.files.merging(["v": [root.file("other/v.txt")]]) { $1 })
        planner.hold { $0.files["v"] != nil }
        let updating = Task { await onThread { try? watcher.update(bigger) } }
        _ = try await planner.waitHeld()
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "t.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["t"]))
        planner.release()
        await updating.value
        #expect(fake.wd(for: other) != nil)
        task.cancel()
        try await task.value
    }

    /// The same with a requested set: the applying task is stuck planning, the reader is not.
    @Test func readerProceedsWhileARequestIsPlanned() async throws {
        let (root, dir, other, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let (watcher, task) = try started(fake, planner, set)
        let wd = try #require(fake.wd(for: dir))
        let bigger = WatchSet(files: set.files.merging(["v": [root.file("other/v.txt")]]) { $1 })
        planner.hold { $0.files["v"] != nil }
        let generation = watcher.request(bigger)
        _ = try await planner.waitHeld()
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "u.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["u"]))
        #expect(watcher.appliedGeneration < generation)
        planner.release()
        await watcher.waitApplied(generation)
        #expect(fake.wd(for: other) != nil)
        task.cancel()
        try await task.value
    }

    /// Of several requests made while an older one is being planned, only the newest is planned
    /// and applied; the older plan, once built, is dropped without touching the kernel.
    @Test func newestOfRapidRequestsWins() async throws {
        let (root, dir, other, set) = try fixture()
        defer { root.remove() }
        try root.put("third/w.txt", "w\n")
        let third = FileProbe.realpath(root.file("third"))!
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let (watcher, task) = try started(fake, planner, set)
        let a = WatchSet(files: ["v": [root.file("other/v.txt")]])
        let b = WatchSet(files: ["w": [root.file("third/w.txt")]])
        let c = WatchSet(files: ["t": [root.file("dir/t.txt")], "w": [root.file("third/w.txt")]])
        planner.hold { $0 == a }
        watcher.request(a)
        _ = try await planner.waitHeld()
        watcher.request(b)
        let last = watcher.request(c)
        planner.release()
        await watcher.waitApplied(last)
        #expect(watcher.appliedGeneration == last)
        // (A round that adds a watch is followed by another plan of the same set.)
        #expect(!planner.calls.contains(b), "b was never planned")
        #expect(planner.calls.filter { $0 == a }.count == 1)
        #expect(planner.calls.last == c)
        let added = fake.script.withLock { $0.addCalls }
        #expect(!added.contains(other), "the plan for a was dropped unapplied")
        #expect(added == [dir, third])
        #expect(fake.wd(for: dir) != nil)
        // What c gained is re-checked: w is new, t was watched all along.
        #expect(try await nextChange(watcher.changes) == .templates(["w"]))
        task.cancel()
        try await task.value
    }

    /// A plan built from the file system as it was before an event never replaces the plan built
    /// after it: the reader's plan (symlink now to store-b) stays, the held one (store-a) is dropped.
    @Test func planBuiltBeforeAnEventDoesNotReplaceTheOneBuiltAfter() async throws {
        let root = try TemporaryDirectory("kvwarm-watch-request")
        defer { root.remove() }
        try root.put("store-a/t.txt", "a\n")
        try root.put("store-b/t.txt", "b\n")
        try root.put("conf/placeholder", "")
        try tool("/bin/ln", "-s", root.file("store-a/t.txt"), root.file("conf/t.txt"))
        let conf = FileProbe.realpath(root.file("conf"))!
        let storeA = FileProbe.realpath(root.file("store-a"))!
        let storeB = FileProbe.realpath(root.file("store-b"))!
        let set = WatchSet(files: ["t": [root.file("conf/t.txt")]])
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let (watcher, task) = try started(fake, planner, set)
        let confWD = try #require(fake.wd(for: conf))
        let storeAWD = try #require(fake.wd(for: storeA))
        let again = WatchSet(files: ["t": [root.file("conf/t.txt")], "t2": [root.file("conf/t.txt")]])
        planner.hold { $0 == again }
        let generation = watcher.request(again)
        _ = try await planner.waitHeld()  // it looked while the link pointed to store-a
        try tool("/bin/ln", "-sfn", root.file("store-b/t.txt"), root.file("conf/t.txt"))
        fake.enqueue([InotifyEvent(wd: confWD, mask: InotifyMask.movedTo, cookie: 1, name: "t.txt")])
        let change = try #require(try await nextChange(watcher.changes))
        #expect(change.contains("t") && change.contains("t2"))
        #expect(fake.wd(for: storeB) != nil)
        await watcher.waitApplied(generation)  // by the reader's plan: the applying task is still held
        planner.release()
        // The held plan is dropped: one more reconciliation must not bring store-a back.
        let next = watcher.request(again)
        await watcher.waitApplied(next)
        #expect(fake.wd(for: storeA) == nil)
        #expect(fake.script.withLock { $0.removed } == [storeAWD])
        #expect(fake.script.withLock { $0.addCalls.filter { $0 == storeA }.count } == 1)
        task.cancel()
        try await task.value
    }

    /// `request` returns at once even while the applying task is stuck, never throws, and an
    /// `ENOSPC` is logged exactly once with the daemon's fields.
    @Test func requestNeverBlocksAndLogsAWatchLimitOnce() async throws {
        let (root, _, other, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let recorder = WatchLogRecorder()
        let (watcher, task) = try started(fake, planner, set, logger: recorder.logger)
        let failing = WatchSet(files: ["v": [root.file("other/v.txt")]])
        planner.hold { $0 == set }
        watcher.request(set)
        _ = try await planner.waitHeld()
        fake.script.withLock { $0.addWatchError = .noSpace }
        var last: UInt64 = 0
        for _ in 0..<50 { last = watcher.request(failing) }  // would hang here if request waited for the task
        planner.release()
        await watcher.waitApplied(last)
        let errors = recorder.records.filter { $0.level == .error }
        #expect(errors.count == 1, "\(errors.map(\.message))")
        let record = try #require(errors.first)
        #expect(record.message.hasPrefix("cannot watch template files: "))
        #expect(record.message.contains("fs.inotify.max_user_watches"))
        #expect(record.metadata[LogField.stage] == .string(Stage.watch.rawValue))
        #expect(record.metadata[LogField.messageID] == .string(MessageID.watchError.rawValue))
        #expect(record.metadata[LogField.outcome] == .string(Outcome.failed.rawValue))
        #expect(record.metadata[LogField.path] == .string(other))
        #expect(record.metadata[LogField.hint]?.description.contains("fs.inotify.max_user_watches") == true)
        task.cancel()
        try await task.value
    }

    /// A set requested before `run()` is applied once it starts, and re-checks every template it
    /// watches (nothing was watched before). `update` before `run()` yields nothing.
    @Test func requestBeforeRunIsAppliedByRun() async throws {
        let (root, dir, _, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let watcher = TemplateWatcher(syscalls: fake, logger: Logger(label: "kvwarm.test.watch"), planner: planner.planner)
        let generation = watcher.request(set)
        #expect(fake.script.withLock { $0.addCalls }.isEmpty)
        let task = Task { try await watcher.run() }
        await watcher.waitApplied(generation)
        #expect(fake.wd(for: dir) != nil)
        #expect(try await nextChange(watcher.changes) == .templates(["t", "u"]))
        task.cancel()
        try await task.value
        // Stopped: waiting returns at once, requests are only recorded.
        let after = watcher.request(WatchSet(files: [:]))
        await watcher.waitApplied(after)
    }

    /// Installed by `update` before `run()`: no element for the initial set.
    @Test func updateBeforeRunYieldsNothing() async throws {
        let (root, dir, _, set) = try fixture()
        defer { root.remove() }
        let fake = FakeInotify()
        let planner = GatedPlanner()
        let (watcher, task) = try started(fake, planner, set)
        let wd = try #require(fake.wd(for: dir))
        fake.enqueue([InotifyEvent(wd: wd, mask: InotifyMask.closeWrite, name: "u.txt")])
        #expect(try await nextChange(watcher.changes) == .templates(["u"]))
        task.cancel()
        try await task.value
    }

    /// A waiter for a generation never applied is released by cancelling its task.
    @Test func waitAppliedEndsOnCancellation() async throws {
        let watcher = TemplateWatcher(syscalls: FakeInotify(), logger: Logger(label: "kvwarm.test.watch"))
        let generation = watcher.request(WatchSet(files: [:]))  // never applied: run() is not running
        let waiting = Task { await watcher.waitApplied(generation) }
        waiting.cancel()
        await waiting.value
        #expect(watcher.appliedGeneration == 0)
    }
}
