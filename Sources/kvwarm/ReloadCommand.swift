import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KVWarm

/// `kvwarm reload`: SIGHUP to the running daemon, returning once that reload is done.
///
/// For `ExecReload=` (systemd 252 has no `Type=notify-reload`): exit 0 when the reload took,
/// 1 when it was rejected (the daemon keeps its running configuration), 3 when no kvwarm runs
/// on the state directory, 75 when no reload finished within `--timeout-seconds`.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make the running daemon re-read its config and wait until that reload is done.")

    @OptionGroup var config: ConfigOptions
    @Option(name: .long, help: "The daemon's state directory (default: $STATE_DIRECTORY, else the config's state_dir).")
    var stateDir: String?
    @Option(name: .long, help: "How long to wait for the reload (warming new and changed templates included).")
    var timeoutSeconds: Double = 600

    func run() async throws {
        // the daemon is found by its state directory, so a config that no longer loads is still
        // sent to the daemon, which rejects it and says why
        let dir: String
        if let d = stateDir ?? ProcessEnvironment.current["STATE_DIRECTORY"].flatMap({
            $0.split(separator: ":").first.map(String.init)
        }), !d.isEmpty {
            dir = d
        } else {
            dir = try config.load(keyOptional: true).stateDir
        }
        guard case .process(let pid?) = InstanceLock.holder(directory: dir) else {
            printError("kvwarm: no kvwarm runs on state_dir \(dir)")
            throw ExitCode(3)
        }
        let token: String
        do { token = try ReloadRecord.request(directory: dir) } catch {
            printError("kvwarm: cannot leave a reload request in \(dir): \(error)")
            throw ExitCode(SysExit.cantCreate.rawValue)
        }
        guard kill(pid, SIGHUP) == 0 else {
            printError("kvwarm: cannot signal pid \(pid): \(String(cString: strerror(errno)))")
            throw ExitCode(SysExit.noPermission.rawValue)  // EX_NOPERM
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeoutSeconds * 1000))
        while ContinuousClock.now < deadline {
            if let r = ReloadRecord.read(directory: dir), r.requests.contains(token) {
                if r.ok {
                    print("reloaded: \(r.message)")
                    return
                }
                printError("kvwarm: reload rejected, the running configuration stays: \(r.message)")
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        printError("kvwarm: no reload finished within \(timeoutSeconds) s (it may still be warming)")
        throw ExitCode(SysExit.tempFail.rawValue)
    }
}
