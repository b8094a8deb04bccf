#if canImport(Glibc)
import Glibc
#endif

/// Names the calling thread as the kernel sees it (`/proc/<pid>/task/<tid>/comm`, `top -H`,
/// `ps -L`). ``OSThread`` calls it first thing on each of kvwarm's own threads
/// ("kvwarm-inotify", "kvwarm-curl").
enum ThreadNaming {
    /// At most 15 bytes count; a longer name is cut.
    static func nameCurrentThread(_ name: String) {
        _ = glibcSetThreadName(pthread_self(), String(name.utf8.prefix(15)) ?? "kvwarm")
    }
}

// glibc's pthread_setname_np is declared only under _GNU_SOURCE, which the Glibc module map
// does not define; the symbol itself is part of every glibc kvwarm runs on (2.12 and later).
@_silgen_name("pthread_setname_np")
private func glibcSetThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
