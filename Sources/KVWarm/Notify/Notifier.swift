import Glibc

/// Tells the service manager (systemd, `Type=notify`) about readiness, progress, reloads and stops.
///
/// Each method sends exactly one datagram; fields that belong together (`READY=1` and `STATUS`,
/// `RELOADING=1` and `MONOTONIC_USEC`) always travel in the same one. `STATUS` texts are made single
/// line (line breaks and other control characters become spaces). Every method returns whether the
/// message was delivered; callers may ignore it, as sd_notify(3) recommends.
public struct Notifier: Sendable {
    /// The transport messages go through.
    public let transport: any NotifyTransport

    /// Creates a notifier sending through `transport`.
    public init(transport: any NotifyTransport) { self.transport = transport }

    /// A notifier that sends nothing (not running under systemd).
    public static let disabled = Notifier(transport: DisabledNotifyTransport())

    /// `NOTIFY_SOCKET` set and non-empty → libsystemd's `sd_notify` (``SystemdNotifyTransport``);
    /// otherwise ``disabled``. Read the environment once, in `main`.
    public static func fromEnvironment(_ env: [String: String]) -> Notifier {
        if let socket = env["NOTIFY_SOCKET"], !socket.isEmpty {
            return Notifier(transport: SystemdNotifyTransport())
        }
        return .disabled
    }

    /// Whether messages go anywhere.
    public var isEnabled: Bool { !(transport is DisabledNotifyTransport) }

    /// Startup (or a reload) finished: `READY=1` plus `STATUS=`, in one datagram.
    @discardableResult
    public func ready(status: String) -> Bool {
        transport.send("READY=1\nSTATUS=\(Self.singleLine(status))")
    }

    /// Updates the text `systemctl status` shows: `STATUS=`.
    @discardableResult
    public func status(_ text: String) -> Bool {
        transport.send("STATUS=\(Self.singleLine(text))")
    }

    /// Extends the current start/reload/stop timeout: `EXTEND_TIMEOUT_USEC=` (rounded up to whole
    /// microseconds), optionally with `STATUS=`. Must be re-sent before each extension runs out.
    @discardableResult
    public func extendTimeout(by duration: Duration, status: String? = nil) -> Bool {
        var message = "EXTEND_TIMEOUT_USEC=\(Self.microseconds(duration))"
        if let status { message += "\nSTATUS=\(Self.singleLine(status))" }
        return transport.send(message)
    }

    /// A reload started: `RELOADING=1`, `MONOTONIC_USEC=<CLOCK_MONOTONIC now, µs>` and `STATUS=` in one
    /// datagram (systemd 253+ `Type=notify-reload` requires `MONOTONIC_USEC` in the same message).
    /// Send ``ready(status:)`` when the reload is done.
    @discardableResult
    public func reloading(status: String) -> Bool {
        transport.send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())\nSTATUS=\(Self.singleLine(status))")
    }

    /// Shutdown started: `STOPPING=1` plus `STATUS=`.
    @discardableResult
    public func stopping(status: String) -> Bool {
        transport.send("STOPPING=1\nSTATUS=\(Self.singleLine(status))")
    }

    /// Watchdog keep-alive: `WATCHDOG=1`.
    @discardableResult
    public func watchdog() -> Bool {
        transport.send("WATCHDOG=1")
    }

    /// Reports a fatal failure just before exiting: `STATUS=` plus `ERRNO=` (a positive errno value).
    @discardableResult
    public func failed(status: String, errno code: Int32) -> Bool {
        transport.send("STATUS=\(Self.singleLine(status))\nERRNO=\(code)")
    }

    /// Replaces line breaks and other control characters with spaces, so the text cannot start a
    /// new `KEY=VALUE` line (or cut the C string short with a NUL).
    public static func singleLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = String.UnicodeScalarView()
        var lastWasBreak = false
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                // "\r\n" becomes one space, not two.
                if !(lastWasBreak && scalar == "\n") { out.append(" ") }
                lastWasBreak = scalar == "\r"
            } else {
                out.append(scalar)
                lastWasBreak = false
            }
        }
        return String(out)
    }

    private static func isControl(_ s: Unicode.Scalar) -> Bool {
        s.value < 0x20 || s.value == 0x7F || s == "\u{2028}" || s == "\u{2029}" || s == "\u{85}"
    }

    /// `duration` in microseconds, rounded up; negative durations give 0.
    static func microseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let perMicro: Int64 = 1_000_000_000_000
        let micros = attoseconds / perMicro + (attoseconds % perMicro > 0 ? 1 : 0)
        return UInt64(seconds) * 1_000_000 + UInt64(micros)
    }

    /// `CLOCK_MONOTONIC` now, in microseconds (what `MONOTONIC_USEC` expects).
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}

/// The systemd watchdog settings passed to the service (`WatchdogSec=` in the unit).
public struct WatchdogConfig: Sendable {
    /// The watchdog ping interval: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends.
    ///
    /// Returns `nil` when the watchdog is off for this process: `WATCHDOG_USEC` unset, zero or not a
    /// number, or `WATCHDOG_PID` set to something other than `pid` (the variable was inherited and
    /// is meant for another process) or unparsable.
    public static func fromEnvironment(_ env: [String: String], pid: Int32) -> Duration? {
        timeout(env, pid: pid).map { $0 / 2 }
    }

    /// The full watchdog timeout (`WATCHDOG_USEC`) under the same rules as ``fromEnvironment(_:pid:)``.
    public static func timeout(_ env: [String: String], pid: Int32) -> Duration? {
        guard let raw = env["WATCHDOG_USEC"], let usec = UInt64(raw), usec > 0, usec <= UInt64(Int64.max) else {
            return nil
        }
        if let pidText = env["WATCHDOG_PID"] {
            guard let watchdogPID = Int32(pidText), watchdogPID == pid else { return nil }
        }
        return .microseconds(Int64(usec))
    }
}
