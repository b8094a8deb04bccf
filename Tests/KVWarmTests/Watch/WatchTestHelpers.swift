import Foundation
import Logging
import Synchronization
import SystemPackage
import Testing
@testable import KVWarm
import KVWarmTestSupport

#if canImport(Glibc)
import Glibc
#endif

struct WatchTimeout: Error, CustomStringConvertible {
    var description: String
}

/// The next element of `stream`, or a thrown ``WatchTimeout`` after `timeout`.
/// `nil` means the stream finished.
func nextChange(
    _ stream: AsyncStream<WatchChange>, within timeout: Duration = .seconds(30), _ what: String = "a change"
) async throws -> WatchChange? {
    try await withThrowingTaskGroup(of: WatchChange?.self) { group in
        group.addTask {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try await ContinuousClock().sleep(for: timeout)
            throw WatchTimeout(description: "no element within \(timeout) while waiting for \(what)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

extension WatchChange {
    func contains(_ template: String) -> Bool {
        switch self {
        case .rescanAll: return false
        case .templates(let t), .attributes(let t): return t.contains(template)
        }
    }
}

/// Consumes elements until one names `template`; returns everything consumed (that one last).
@discardableResult
func drain(
    _ stream: AsyncStream<WatchChange>, until template: String, within timeout: Duration = .seconds(30)
) async throws -> [WatchChange] {
    var seen: [WatchChange] = []
    while true {
        guard let change = try await nextChange(stream, within: timeout, "a change for \(template)") else {
            Issue.record("changes finished while waiting for \(template); saw \(seen)")
            throw WatchTimeout(description: "stream finished")
        }
        seen.append(change)
        if change.contains(template) { return seen }
    }
}

/// Runs a real tool to completion and expects exit status 0.
func tool(_ path: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "\(path) \(arguments) exited \(p.terminationStatus)", sourceLocation: sourceLocation)
}

/// `sh -c script` with `$1`, `$2`… set to `arguments` (no quoting trouble).
func shell(_ script: String, _ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script, "sh"] + arguments
    p.standardInput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "sh -c \(script) exited \(p.terminationStatus)", sourceLocation: sourceLocation)
}

func inode(_ path: String) -> UInt64 {
    var st = stat()
    guard stat(path, &st) == 0 else { return 0 }
    return UInt64(st.st_ino)
}

extension TemporaryDirectory {
    /// Like `write`, but the file is written by a child shell, never opened by this process.
    ///
    /// Tests run in parallel and spawn tools. A child spawned while this process holds a file
    /// open for writing shares that open file (even with `O_CLOEXEC`, until its `exec`); if it
    /// drops it last, the kernel reports `IN_CLOSE_WRITE` then: a stray, late event in a test's
    /// watch. Files opened only by a child process cannot leak that way.
    @discardableResult
    func put(_ name: String, _ text: String) throws -> String {
        let p = file(name)
        try shell("mkdir -p \"$(dirname \"$1\")\" && printf '%s' \"$2\" > \"$1\"", p, text)
        return p
    }
}

/// A running watcher over real inotify, with a "barrier" template in its own directory:
/// writing it and draining until it shows up proves every earlier event was handled.
struct LiveWatch: Sendable {
    let root: TemporaryDirectory
    let watcher: TemplateWatcher
    let task: Task<Void, any Error>
    var changes: AsyncStream<WatchChange> { watcher.changes }

    /// `files` are paths relative to `root`, per template.
    init(root: TemporaryDirectory, _ files: [String: [String]], logger: Logger = LiveWatch.defaultLogger) throws {
        self.root = root
        try root.put("barrier/b.txt", "0\n")
        var set: [String: Set<String>] = ["barrier": [root.file("barrier/b.txt")]]
        for (t, paths) in files { set[t] = Set(paths.map(root.file)) }
        let watcher = TemplateWatcher(logger: logger)
        try watcher.update(WatchSet(files: set))
        self.watcher = watcher
        self.task = Task { try await watcher.run() }
    }

    /// Set `KVWARM_TEST_WATCH_TRACE=1` to see every raw event on stderr.
    static var defaultLogger: Logger {
        var l = Logger(label: "kvwarm.test.watch")
        if ProcessInfo.processInfo.environment["KVWARM_TEST_WATCH_TRACE"] != nil { l.logLevel = .trace }
        return l
    }

    /// Writes the barrier file and consumes changes up to and including its own.
    @discardableResult
    func barrier() async throws -> [WatchChange] {
        try shell("echo x >> \"$1\"", root.file("barrier/b.txt"))
        return try await drain(changes, until: "barrier")
    }

    func stop() async throws {
        task.cancel()
        try await task.value
        root.remove()
    }
}

/// A log handler that keeps records, for asserting on log output.
final class WatchLogRecorder: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let storage = Mutex<[Record]>([])
    var records: [Record] { storage.withLock { $0 } }

    var logger: Logger {
        var l = Logger(label: "kvwarm.test.watch") { _ in Handler(recorder: self) }
        l.logLevel = .trace
        return l
    }

    private struct Handler: LogHandler {
        let recorder: WatchLogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.storage.withLock {
                $0.append(Record(level: event.level, message: event.message.description, metadata: merged))
            }
        }
    }
}

/// Fake inotify: scripted reads and failures. Its "inotify descriptor" is the read end of a
/// real pipe holding one byte per scripted read, so the watcher's real `poll` works on it.
final class FakeInotify: InotifySyscalls {
    struct Script {
        var initializeError: Errno?
        var addWatchError: Errno?
        var reads: [Result<[UInt8], Errno>] = []
        var pollErrors: [Errno] = []
        var wds: [String: CInt] = [:]
        var nextWD: CInt = 1
        var removed: [CInt] = []
        var addCalls: [String] = []
        var readCalls = 0
        var pollCalls = 0
        var pipe: (CInt, CInt)?
        var closed = false
    }

    let script = Mutex(Script())

    init(_ configure: (inout Script) -> Void = { _ in }) {
        script.withLock { configure(&$0) }
    }

    func wd(for directory: String) -> CInt? { script.withLock { $0.wds[directory] } }

    /// Simulates the directory being replaced by another inode: the next add gets a new wd.
    func replace(_ directory: String) { script.withLock { _ = $0.wds.removeValue(forKey: directory) } }

    /// Queues the result of one future `read()`.
    func enqueue(_ read: Result<[UInt8], Errno>) {
        script.withLock { s in
            s.reads.append(read)
            var byte: UInt8 = 1
            if let (_, w) = s.pipe { _ = Glibc.write(w, &byte, 1) }
        }
    }

    func enqueue(_ events: [InotifyEvent]) { enqueue(.success(InotifyEventParser.encode(events))) }

    func initialize(flags: Int32) throws(Errno) -> CInt {
        try script.withLock { (s) throws(Errno) -> CInt in
            if let e = s.initializeError { throw e }
            var fds: [CInt] = [-1, -1]
            guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
            s.pipe = (fds[0], fds[1])
            var byte: UInt8 = 1
            for _ in s.reads { _ = Glibc.write(fds[1], &byte, 1) }
            return fds[0]
        }
    }

    func addWatch(fd: CInt, path: String, mask: UInt32) throws(Errno) -> CInt {
        try script.withLock { (s) throws(Errno) -> CInt in
            s.addCalls.append(path)
            if let e = s.addWatchError { throw e }
            if let wd = s.wds[path] { return wd }  // as the kernel: same inode, same wd
            let wd = s.nextWD
            s.nextWD += 1
            s.wds[path] = wd
            return wd
        }
    }

    func removeWatch(fd: CInt, wd: CInt) throws(Errno) {
        script.withLock { s in
            s.removed.append(wd)
            s.wds = s.wds.filter { $0.value != wd }
        }
    }

    func read(fd: CInt, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let next = script.withLock { s -> Result<[UInt8], Errno>? in
            s.readCalls += 1
            guard !s.reads.isEmpty else { return nil }
            var byte: UInt8 = 0
            _ = Glibc.read(fd, &byte, 1)
            return s.reads.removeFirst()
        }
        guard let next else { throw .resourceTemporarilyUnavailable }
        let bytes = try next.get()
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return bytes.count
    }

    func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) throws(Errno) -> Int {
        let injected = script.withLock { s -> Errno? in
            s.pollCalls += 1
            return s.pollErrors.isEmpty ? nil : s.pollErrors.removeFirst()
        }
        if let injected { throw injected }
        return try KernelInotify().poll(&fds, timeoutMilliseconds: timeoutMilliseconds)
    }

    func close(fd: CInt) throws(Errno) {
        script.withLock { s in
            if let (r, w) = s.pipe {
                _ = Glibc.close(r)
                _ = Glibc.close(w)
            }
            s.pipe = nil
            s.closed = true
        }
    }
}

/// A plan builder for tests: records every set it plans and can hold one planning, after it has
/// looked at the file system, until ``release()``. Holding blocks the planning thread.
final class GatedPlanner: Sendable {
    private struct State {
        var calls: [WatchSet] = []
        var hold: (@Sendable (WatchSet) -> Bool)?
    }

    private let state = Mutex(State())
    private let gate = DispatchSemaphore(value: 0)
    private let held: AsyncStream<WatchSet>
    private let heldSink: AsyncStream<WatchSet>.Continuation

    init() {
        (held, heldSink) = AsyncStream.makeStream(of: WatchSet.self, bufferingPolicy: .unbounded)
    }

    /// Every set planned so far, in order.
    var calls: [WatchSet] { state.withLock { $0.calls } }

    /// The next planning of a set matching `match` is held.
    func hold(when match: @escaping @Sendable (WatchSet) -> Bool) {
        state.withLock { $0.hold = match }
    }

    /// Returns the held set once a planning is being held.
    func waitHeld(within timeout: Duration = .seconds(30)) async throws -> WatchSet {
        let held = self.held
        return try await withThrowingTaskGroup(of: WatchSet?.self) { group in
            group.addTask {
                var iterator = held.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try await ContinuousClock().sleep(for: timeout)
                throw WatchTimeout(description: "no planning was held within \(timeout)")
            }
            defer { group.cancelAll() }
            guard let set = try await group.next()! else { throw WatchTimeout(description: "stream finished") }
            return set
        }
    }

    /// Lets the held planning return.
    func release() { gate.signal() }

    /// The planner to inject into ``TemplateWatcher``.
    var planner: @Sendable (WatchSet) -> WatchPlan { { set in self.plan(set) } }

    private func plan(_ set: WatchSet) -> WatchPlan {
        let plan = WatchPlan(set)
        let holding = state.withLock { s -> Bool in
            s.calls.append(set)
            guard let match = s.hold, match(set) else { return false }
            s.hold = nil
            return true
        }
        if holding {
            heldSink.yield(set)
            // Bounded, so a failing test cannot hang the run; long enough for a loaded machine.
            _ = gate.wait(timeout: .now() + .seconds(30))
        }
        return plan
    }
}

/// `body` on a new thread (not one of Swift's cooperative pool), awaited.
func onThread(_ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        Thread {
            body()
            done.resume()
        }.start()
    }
}
