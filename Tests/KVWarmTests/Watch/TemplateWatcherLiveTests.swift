import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// Real inotify, real tools, temp directories. Every wait has a timeout that fails the test.
@Suite struct TemplateWatcherLiveTests {
    /// A watch on `dir/t.txt` (content "a\n") plus the barrier template.
    private func start() throws -> LiveWatch {
        let root = try TemporaryDirectory("kvwarm-watch")
        try root.put("dir/t.txt", "a\n")
        return try LiveWatch(root: root, ["t": ["dir/t.txt"]])
    }

    @Test func appendWithEchoReportsExactlyTheTemplate() async throws {
        let w = try start()
        try shell("echo more >> \"$1\"", w.root.file("dir/t.txt"))
        let c1 = try await nextChange(w.changes)
        #expect(c1 == .templates(["t"]))
        try await w.stop()
    }

    @Test func sedInPlaceIsSeenThroughItsRename() async throws {
        let w = try start()
        let path = w.root.file("dir/t.txt")
        let before = inode(path)
        try tool("/usr/bin/sed", "-i", "s/a/b/", path)
        #expect(inode(path) != before, "sed -i is expected to replace the file by rename")
        try await drain(w.changes, until: "t")
        try await w.stop()
    }

    @Test func vimDefaultSaveIsSeenThroughItsRename() async throws {
        let w = try start()
        let path = w.root.file("dir/t.txt")
        let before = inode(path)
        // Vim's defaults (-N: 'backupcopy' is "auto", 'writebackup' on) save by rename, except that
        // the default 'backupskip' covers /tmp/* and $TMPDIR/*, where the temp dir lives: clear it.
        try tool("/usr/bin/vim", "-u", "NONE", "-N", "-es", "-c", "set backupskip=", "-c", "s/a/b/", "-c", "wq", path)
        #expect(inode(path) != before, "vim's default save (backupcopy=auto) is expected to rename")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "b\n")
        try await drain(w.changes, until: "t")
        try await w.stop()
    }

    @Test func copyOverIsSeen() async throws {
        let w = try start()
        let source = try w.root.put("elsewhere/new.txt", "new\n")
        try tool("/bin/cp", source, w.root.file("dir/t.txt"))
        let c2 = try await nextChange(w.changes)
        #expect(c2 == .templates(["t"]))
        try await w.stop()
    }

    @Test func moveOverIsSeen() async throws {
        let w = try start()
        let staged = try w.root.put("dir/t.txt.new", "new\n")
        try tool("/bin/mv", staged, w.root.file("dir/t.txt"))
        let c3 = try await nextChange(w.changes)
        #expect(c3 == .templates(["t"]))
        try await w.stop()
    }

    @Test func touchIsSeen() async throws {
        let w = try start()
        try tool("/usr/bin/touch", w.root.file("dir/t.txt"))
        // touch opens the file, sets its times (IN_ATTRIB) and closes it (IN_CLOSE_WRITE); the
        // watcher may read the first event alone, so either kind names the template
        let c4 = try await nextChange(w.changes)
        #expect(c4 == .templates(["t"]) || c4 == .attributes(["t"]), "\(c4)")
        try await w.stop()
    }

    @Test func chmodIsAnAttributeChange() async throws {
        let w = try start()
        try tool("/usr/bin/chmod", "0600", w.root.file("dir/t.txt"))
        #expect(try await nextChange(w.changes) == .attributes(["t"]))
        try await w.stop()
    }

    @Test func removeThenRecreateFile() async throws {
        let w = try start()
        try FileManager.default.removeItem(atPath: w.root.file("dir/t.txt"))
        let c5 = try await nextChange(w.changes)
        #expect(c5 == .templates(["t"]))
        try await w.barrier()
        try shell("echo again > \"$1\"", w.root.file("dir/t.txt"))
        let c6 = try await nextChange(w.changes)
        #expect(c6 == .templates(["t"]))
        try await w.stop()
    }

    @Test func unrelatedFilesInTheSameDirectoryProduceNoChange() async throws {
        let w = try start()
        for name in ["other.txt", "4913", ".t.txt.swp", "t.txt~", "sedAb12Cd", ".#t.txt"] {
            try w.root.put("dir/\(name)", "x\n")
        }
        try FileManager.default.removeItem(atPath: w.root.file("dir/4913"))
        // Nothing may arrive for those: the first element is the barrier's alone.
        let seen = try await w.barrier()
        #expect(seen == [.templates(["barrier"])])
        try shell("echo more >> \"$1\"", w.root.file("dir/t.txt"))
        let c7 = try await nextChange(w.changes)
        #expect(c7 == .templates(["t"]))
        try await w.stop()
    }

    @Test func includeFileInAnotherDirectoryMapsToItsTemplateOnly() async throws {
        let root = try TemporaryDirectory("kvwarm-watch")
        try root.put("dir/t.txt", "a\n")
        try root.put("dir/u.txt", "u\n")
        try root.put("includes/common.txt", "c\n")
        let w = try LiveWatch(root: root, ["t": ["dir/t.txt", "includes/common.txt"], "u": ["dir/u.txt"]])
        try shell("echo more >> \"$1\"", root.file("includes/common.txt"))
        let c8 = try await nextChange(w.changes)
        #expect(c8 == .templates(["t"]))
        try shell("echo more >> \"$1\"", root.file("dir/u.txt"))
        let c9 = try await nextChange(w.changes)
        #expect(c9 == .templates(["u"]))
        try await w.stop()
    }

    @Test func sharedFileReportsEveryTemplateUsingIt() async throws {
        let root = try TemporaryDirectory("kvwarm-watch")
        try root.put("dir/t.txt", "a\n")
        try root.put("dir/u.txt", "u\n")
        try root.put("dir/common.txt", "c\n")
        let w = try LiveWatch(root: root, ["t": ["dir/t.txt", "dir/common.txt"], "u": ["dir/u.txt", "dir/common.txt"]])
        try shell("echo more >> \"$1\"", root.file("dir/common.txt"))
        let c10 = try await nextChange(w.changes)
        #expect(c10 == .templates(["t", "u"]))
        try await w.stop()
    }

    @Test func templateDirectoryRemovedAndRecreated() async throws {
        let w = try start()
        let dir = w.root.file("dir")
        try tool("/bin/rm", "-rf", dir)
        try await drain(w.changes, until: "t")
        try await w.barrier()
        // The watch now sits on the parent; the directory's creation is seen.
        try tool("/bin/mkdir", dir)
        try await drain(w.changes, until: "t")
        try await w.barrier()
        // And the new directory itself is watched.
        try shell("echo x > \"$1\"", w.root.file("dir/t.txt"))
        let c11 = try await nextChange(w.changes)
        #expect(c11 == .templates(["t"]))
        try await w.stop()
    }

    @Test func templateDirectoryRemovedAndRecreatedInOneGo() async throws {
        let w = try start()
        try shell("rm -rf \"$1\"; mkdir \"$1\"; echo x > \"$1/t.txt\"", w.root.file("dir"))
        let seen = try await drain(w.changes, until: "t")
        #expect(!seen.isEmpty)
        try await w.barrier()
        // Whatever the interleaving, the recreated directory ends up watched.
        try shell("echo y >> \"$1\"", w.root.file("dir/t.txt"))
        let c12 = try await nextChange(w.changes)
        #expect(c12 == .templates(["t"]))
        try await w.stop()
    }

    @Test func missingDirectoryIsPickedUpWhenCreated() async throws {
        let root = try TemporaryDirectory("kvwarm-watch")
        let w = try LiveWatch(root: root, ["t": ["not/yet/t.txt"]])
        try root.put("not/yet/t.txt", "a\n")  // creates both directories, then the file
        try await drain(w.changes, until: "t")
        try await w.barrier()
        try shell("echo y >> \"$1\"", root.file("not/yet/t.txt"))
        let c13 = try await nextChange(w.changes)
        #expect(c13 == .templates(["t"]))
        try await w.stop()
    }

    @Test func configMapStyleDataSymlinkSwap() async throws {
        let root = try TemporaryDirectory("kvwarm-watch")
        let dir = root.file("cm")
        try root.put("cm/..v1/t.txt", "v1\n")
        try shell("cd \"$1\" && ln -s ..v1 ..data && ln -s ..data/t.txt t.txt", dir)
        let w = try LiveWatch(root: root, ["t": ["cm/t.txt"]])

        func swap(to version: String, from old: String) throws {
            try root.put("cm/\(version)/t.txt", "\(version)\n")
            try shell(
                "cd \"$1\" && ln -s \"$2\" ..data_tmp && mv -T ..data_tmp ..data && rm -rf \"$3\"",
                dir, version, old)
        }

        try swap(to: "..v2", from: "..v1")
        try await drain(w.changes, until: "t")
        #expect(try String(contentsOfFile: root.file("cm/t.txt"), encoding: .utf8) == "..v2\n")
        try await w.barrier()
        // The watch followed the swap: an in-place write to the new target is seen.
        try shell("echo more >> \"$1\"", root.file("cm/..v2/t.txt"))
        let c14 = try await nextChange(w.changes)
        #expect(c14 == .templates(["t"]))
        // And a second swap is seen too.
        try swap(to: "..v3", from: "..v2")
        try await drain(w.changes, until: "t")
        try await w.stop()
    }

    @Test func symlinkedFileIsWatchedAtItsTargetAndFollowsARelink() async throws {
        let root = try TemporaryDirectory("kvwarm-watch")
        try root.put("store-a/t.txt", "a\n")
        try root.put("store-b/t.txt", "b\n")
        try root.put("conf/placeholder", "")
        try tool("/bin/ln", "-s", root.file("store-a/t.txt"), root.file("conf/t.txt"))
        let w = try LiveWatch(root: root, ["t": ["conf/t.txt"]])
        // An editor saving the target (rename) is seen although nothing happens in conf/.
        try tool("/usr/bin/sed", "-i", "s/a/A/", root.file("store-a/t.txt"))
        try await drain(w.changes, until: "t")
        try await w.barrier()
        // Relink to another store: seen in conf/, and the watch moves to the new target.
        try tool("/bin/ln", "-sfn", root.file("store-b/t.txt"), root.file("conf/t.txt"))
        try await drain(w.changes, until: "t")
        try await w.barrier()
        try shell("echo more >> \"$1\"", root.file("store-b/t.txt"))
        let c = try await nextChange(w.changes)
        #expect(c == .templates(["t"]))
        // The old target no longer concerns t.
        try shell("echo more >> \"$1\"", root.file("store-a/t.txt"))
        #expect(try await w.barrier() == [.templates(["barrier"])])
        try await w.stop()
    }

    @Test func realQueueOverflowYieldsRescanAll() async throws {
        let root = try TemporaryDirectory("kvwarm-watch")
        try root.put("dir/t.txt", "a\n")
        let watcher = TemplateWatcher(logger: LiveWatch.defaultLogger)
        try watcher.update(WatchSet(files: ["t": [root.file("dir/t.txt")]]))
        // Nobody reads yet: more events than fs.inotify.max_queued_events overflow the queue.
        let limit = Int((try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 16384
        // Each new file gives at least CREATE and CLOSE_WRITE. Skip where the queue is huge.
        guard limit <= 65536 else { return }
        try shell("cd \"$1\" && seq -f 'noise%g' 1 \"$2\" | xargs touch", root.file("dir"), String(limit / 2 + 100))
        let task = Task { try await watcher.run() }
        // The reads before the overflow record hold only unrelated names: no element for them.
        #expect(try await nextChange(watcher.changes, within: .seconds(20)) == .rescanAll)
        // Still watching afterwards.
        try shell("echo more >> \"$1\"", root.file("dir/t.txt"))
        try await drain(watcher.changes, until: "t")
        task.cancel()
        try await task.value
        root.remove()
    }

    /// A requested set is applied asynchronously; a directory and file created right after the
    /// request are seen whichever comes first, and the new directory ends up watched.
    @Test func requestedFileInADirectoryCreatedAfterTheRequestIsSeen() async throws {
        let w = try start()
        let generation = w.watcher.request(WatchSet(files: [
            "barrier": [w.root.file("barrier/b.txt")], "t": [w.root.file("dir/t.txt")],
            "n": [w.root.file("later/n.txt")],
        ]))
        try w.root.put("later/n.txt", "n\n")  // mkdir -p, then the file
        try await drain(w.changes, until: "n")
        await w.watcher.waitApplied(generation)
        try await w.barrier()
        try shell("echo more >> \"$1\"", w.root.file("later/n.txt"))
        let c = try await nextChange(w.changes)
        #expect(c == .templates(["n"]))
        try await w.stop()
    }

    @Test func cancellingRunFinishesTheStreamAndLaterUpdatesAreHarmless() async throws {
        let w = try start()
        w.task.cancel()
        try await w.task.value
        let c15 = try await nextChange(w.changes)
        #expect(c15 == nil)
        try w.watcher.update(WatchSet(files: ["t": [w.root.file("dir/t.txt")]]))
        await #expect(throws: TemplateWatcherError.notRunnable) { try await w.watcher.run() }
        w.root.remove()
    }
}
