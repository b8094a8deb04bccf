import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import ServiceLifecycle

/// Writes `metrics_file` for node_exporter's textfile collector: once at start, then at most
/// once a second after something changed (a pass ended, keeping warm put a template back).
///
/// The file is written whole to a temporary name in the same directory (not ending in `.prom`,
/// so the collector never reads it half-written), made world-readable (0644: the collector runs
/// as another user) and renamed over the old one. A failed write is logged once per episode; the
/// next change tries again. Without `metrics_file` in the configuration it writes nothing.
public struct MetricsService: Service {
    /// One coordinator per pipeline; the file holds all their templates.
    public let coordinators: [WarmCoordinator]
    public let logger: Logger
    /// How long after a change the file is written (changes meanwhile share the write).
    public var coalesce: Duration = .seconds(1)

    public init(coordinators: [WarmCoordinator], logger: Logger) {
        self.coordinators = coordinators
        self.logger = logger
    }

    public func run() async throws {
        var failing = false
        await write(&failing)
        let (changes, sink) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let forwards = coordinators.map { c in
            Task { for await _ in c.metrics.changes { sink.yield() } }
        }
        defer { for f in forwards { f.cancel() } }
        await withTaskCancellationHandler {
            for await _ in changes {
                do { try await Task.sleep(for: coalesce) } catch { return }
                await write(&failing)
            }
        } onCancel: { sink.finish() }
    }

    private func write(_ failing: inout Bool) async {
        guard let first = coordinators.first, let path = await first.parts.config.metricsFile else { return }
        var templates: [MetricsSnapshot.Template] = []
        for c in coordinators { templates += await c.metricsTemplates() }
        let text = PrometheusText.render(MetricsSnapshot(templates: templates, writtenAt: Date()))
        if let error = Self.writeAtomically(text, to: path) {
            if !failing {
                logger.warning("cannot write the metrics file \(path): \(error)", metadata: .stage(.persist, .persistFailed, [
                    LogField.path: .string(path), LogField.reason: .string("metrics_file"),
                    LogField.hint: .string("the unit may write only its state and slot directories: add ReadWritePaths= for the metrics directory in a drop-in"),
                ]))
            }
            failing = true
        } else {
            failing = false
        }
    }

    /// Writes `text` to `path` through a temporary file and rename; the error text, or nil.
    static func writeAtomically(_ text: String, to path: String) -> String? {
        let dir = LexicalPath.parent(path)
        let tmp = dir + "/.kvwarm-metrics.\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                unlink(tmp)
                return String(cString: strerror(e))
            }
            done += n
        }
        _ = fchmod(fd, 0o644)  // the unit's UMask=0077 would leave it unreadable for the collector
        close(fd)
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            return String(cString: strerror(e))
        }
        return nil
    }
}
