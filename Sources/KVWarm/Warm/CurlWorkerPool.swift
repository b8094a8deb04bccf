import CCurl
import Dispatch
import Synchronization
import SystemPackage

/// Long-lived threads that run ``CurlJob``s, each on its own reused curl easy handle.
///
/// A handle keeps its connections between requests (`curl_easy_reset` keeps
/// the connection cache), so a warm's `GET /slots`, `POST /completion` and
/// save, and the backend checks, reuse one keep-alive connection instead of
/// paying a thread, a handle and a TCP (or unix-socket) connect per request.
/// A request never waits for another: with no idle worker, a new one starts.
/// At most ``maxIdle`` workers stay parked (blocked on a semaphore, so an idle
/// daemon has no timer and no wakeup here); the others exit after their job.
///
/// Each ``CurlTransport`` has a pool of its own (one backend, so a parked
/// worker's connection is to the right server; curl cannot share connections
/// between handles on concurrent threads). Parked workers hold the pool, so it
/// is closed by its ``Lease``: when the last copy of the transport goes (a
/// reload replaced it), the parked workers exit.
final class CurlWorkerPool: Sendable {
    /// Owned by a transport; closes the pool when the transport and all its copies are gone.
    final class Lease: Sendable {
        let pool: CurlWorkerPool
        init(maxIdle: Int, threadName: String = "kvwarm-curl") {
            pool = CurlWorkerPool(maxIdle: maxIdle, threadName: threadName)
        }
        deinit { pool.close() }
    }

    let maxIdle: Int
    /// The name its threads carry (`/proc/<pid>/task/<tid>/comm`, at most 15 bytes).
    let threadName: String
    private struct Parked {
        var workers: [CurlWorker] = []
        var closed = false
    }
    private let idle = Mutex(Parked())

    private init(maxIdle: Int, threadName: String) {
        self.maxIdle = maxIdle
        self.threadName = threadName
    }

    /// Runs `job` on an idle worker, or on a new one; `done` is called on that worker's thread.
    func run(_ job: CurlJob, done: @escaping @Sendable (Result<HTTPResponse, TransportFailure>) -> Void) {
        if let worker = idle.withLock({ $0.workers.popLast() }) {
            worker.assign(CurlWorker.Assignment(job: job, done: done))
            return
        }
        let worker = CurlWorker(pool: self)
        let name = threadName
        do throws(Errno) {
            try OSThread.detach(name: name) {
                worker.loop(first: CurlWorker.Assignment(job: job, done: done))
            }
        } catch {
            done(.failure(.broken("cannot start a thread for the request: \(error)")))
        }
    }

    /// Offers `worker` for the next job; false when enough workers are parked already (it exits).
    fileprivate func park(_ worker: CurlWorker) -> Bool {
        idle.withLock { p in
            guard !p.closed, p.workers.count < maxIdle else { return false }
            p.workers.append(worker)
            return true
        }
    }

    /// Lets the parked workers exit; workers still busy exit after their job.
    private func close() {
        let parked = idle.withLock { p -> [CurlWorker] in
            p.closed = true
            defer { p.workers = [] }
            return p.workers
        }
        for w in parked { w.dismiss() }
    }
}

/// One pool thread and its mailbox. The easy handle lives on the thread's
/// stack (`loop`), so only the mailbox and the semaphore are shared, and both
/// are synchronised.
final class CurlWorker: Sendable {
    struct Assignment: Sendable {
        let job: CurlJob
        let done: @Sendable (Result<HTTPResponse, TransportFailure>) -> Void
    }

    private let pool: CurlWorkerPool
    private let mailbox = Mutex<Assignment?>(nil)
    private let wake = DispatchSemaphore(value: 0)

    fileprivate init(pool: CurlWorkerPool) { self.pool = pool }

    /// Hands a job to this parked worker.
    fileprivate func assign(_ a: Assignment) {
        mailbox.withLock { $0 = a }
        wake.signal()
    }

    /// Wakes this parked worker with no job: it cleans up its handle and exits.
    fileprivate func dismiss() { wake.signal() }

    fileprivate func loop(first: Assignment) {
        let handle = curl_easy_init()
        defer { if let handle { curl_easy_cleanup(handle) } }
        var current = first
        while true {
            let result: Result<HTTPResponse, TransportFailure>
            if let handle {
                curl_easy_reset(handle)  // options go, connections stay
                result = current.job.perform(on: handle)
            } else {
                result = .failure(.connect("curl_easy_init failed"))
            }
            // park before answering: the caller's next request (often sent at once) finds this worker
            let parked = handle != nil && pool.park(self)
            current.done(result)
            guard parked else { return }
            wake.wait()
            guard let next = mailbox.withLock({ a -> Assignment? in defer { a = nil }; return a }) else { return }
            current = next
        }
    }
}
