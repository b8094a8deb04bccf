import Foundation

/// Runs a command to completion and captures its output.
public enum ProcessRunner {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public static func run(_ path: String, _ args: [String], environment: [String: String]? = nil) async throws -> Output {
        try await withCheckedThrowingContinuation { cont in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = args
            if let environment { p.environment = environment }
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            p.standardInput = FileHandle.nullDevice
            do { try p.run() } catch { cont.resume(throwing: error); return }
            Thread {
                let o = out.fileHandleForReading.readDataToEndOfFile()
                let e = err.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                cont.resume(returning: Output(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                                              stderr: String(decoding: e, as: UTF8.self)))
            }.start()
        }
    }
}

extension Process {
    /// SIGTERM, up to `grace` to exit, then SIGKILL; never spins on a process that ignores SIGTERM.
    public func stopBounded(grace: TimeInterval = 3) {
        if isRunning {
            terminate()
            let deadline = Date().addingTimeInterval(grace)
            while isRunning && Date() < deadline { usleep(10_000) }
            if isRunning { kill(processIdentifier, SIGKILL) }
        }
        while isRunning { usleep(10_000) }
    }
}
