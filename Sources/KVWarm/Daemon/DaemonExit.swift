/// The sysexits(3) codes kvwarm exits with (named apart from ArgumentParser's `ExitCode`).
public enum SysExit: Int32, Sendable {
    case ok = 0
    case usage = 64
    case dataError = 65
    case unavailable = 69
    case software = 70
    case cantCreate = 73
    case tempFail = 75
    case noPermission = 77
    case config = 78
}

/// Ends the daemon with a specific exit code (thrown from a service).
public struct DaemonExit: Error, Sendable, CustomStringConvertible {
    public var code: SysExit
    public var message: String

    public init(_ code: SysExit, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
