import Logging
import ServiceLifecycle

/// Sends WATCHDOG=1 while the pipeline makes progress.
///
/// It pings every half of `WATCHDOG_USEC`, but only while no warm has been in
/// flight for longer than `hangAfter` (the request timeout plus a margin): a
/// pipeline that hangs stops the pings, and systemd restarts the service.
public struct WatchdogService: Service {
    /// One coordinator per pipeline: any of them hanging withholds the pings.
    public let coordinators: [WarmCoordinator]
    public let notifier: Notifier
    public let pingInterval: Duration
    public let hangAfter: Duration
    public let logger: Logger

    public init(coordinators: [WarmCoordinator], notifier: Notifier, pingInterval: Duration, hangAfter: Duration,
                logger: Logger) {
        self.coordinators = coordinators
        self.notifier = notifier
        self.pingInterval = pingInterval
        self.hangAfter = hangAfter
        self.logger = logger
    }

    public func run() async throws {
        var reported = false
        while !Task.isCancelled {
            var oldest: Duration?
            for c in coordinators {
                if let a = await c.inFlightAge() { oldest = max(oldest ?? a, a) }
            }
            if let age = oldest, age > hangAfter {
                if !reported {
                    reported = true
                    logger.error("a warm has been in flight for \(Int(age.milliseconds / 1000)) s: withholding watchdog pings",
                                 metadata: .stage(.warm, .warmFailed, [
                                     LogField.reason: .string("pipeline_hung"),
                                 ]))
                }
            } else {
                reported = false
                notifier.watchdog()
            }
            do { try await Task.sleep(for: pingInterval) } catch { return }
        }
    }
}
