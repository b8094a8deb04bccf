/// sysexits(3) codes kvwarm exits with.
public enum ExitCode: Int32, Sendable {
    case ok = 0
    case usage = 64
    case dataError = 65
    case noInput = 66
    case unavailable = 69
    case software = 70
    case ioError = 74
    case tempFail = 75
    case cantCreate = 73
    case noPermission = 77
    case config = 78
}

/// Ends the daemon with a specific exit code (thrown from a service).
public struct DaemonExit: Error, Sendable, CustomStringConvertible {
    public var code: ExitCode
    public var message: String

    public init(_ code: ExitCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
