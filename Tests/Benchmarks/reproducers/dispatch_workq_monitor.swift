// Minimal reproducer: once any Swift task has run on Linux, libdispatch's worker-pool monitor
// (_dispatch_workq_init_once in src/event/workqueue.c) wakes the process once a second forever,
// even when nothing is scheduled. Build and run with dispatch_workq_monitor.sh.
#if canImport(Glibc)
import Glibc
#endif

let useTask = CommandLine.arguments.dropFirst().first != "--no-task"
if useTask {
    // one trivial task on the global executor, then nothing but a blocked main thread
    let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    sem_init(done, 0, 0)
    let box = UInt(bitPattern: done)
    Task.detached { sem_post(UnsafeMutablePointer<sem_t>(bitPattern: box)!) }
    sem_wait(done)
}
print("ready", getpid())
fflush(stdout)
pause()
