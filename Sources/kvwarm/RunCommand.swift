import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KVWarm

/// `kvwarm run`: the daemon.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: warm every template, send READY=1, then follow edits and backend restarts.")

    @OptionGroup var config: ConfigOptions
    @OptionGroup var log: LogOptions

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let logger = log.bootstrap()
        let env = config.environment
        // NOTIFY_SOCKET is read here once; everything below gets the Notifier injected
        let daemon = KVWarmDaemon(configPath: config.path, environment: env,
                                  notifier: Notifier.fromEnvironment(env), logger: logger)
        let code = await daemon.run()
        if code == .config {
            // the daemon logged it; repeat on stderr for an operator at a terminal
            do {
                _ = try ConfigLoader(environment: env).load(path: config.path)
            } catch {
                printError("kvwarm: invalid configuration: \(error)")
            }
        }
        if code != .ok { throw ExitCode(code.rawValue) }
    }
}
