import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KVWarm
import Logging

/// `kvwarm`: keeps llama-server's KV cache warm for prompt templates.
@main
struct KVWarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvwarm",
        abstract: "Keep llama.cpp's KV cache warm for prompt templates.",
        discussion: """
            kvwarm watches template files with inotify and warms llama-server's KV cache for each \
            template after startup, after every edit and after the server restarts. \
            See docs/configuration.md for the config file.
            """,
        version: KVWarmVersion.string,
        subcommands: [RunCommand.self, CheckCommand.self, StatusCommand.self, WarmCommand.self, RenderCommand.self, ReloadCommand.self]
    )
}

/// Options every subcommand that reads the config shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (default: $KVWARM_CONFIG, else /etc/kvwarm/config.json).")
    var config: String?

    var environment: [String: String] { ProcessEnvironment.current }

    var path: String { ConfigLoader.configPath(explicit: config, environment: environment) }

    /// Builds the parts of pipeline `key` of `config` (its API key read), or exits 78.
    func parts(_ config: KVWarmConfig, _ key: PipelineKey) throws -> PipelineParts {
        do {
            return try KVWarmDaemon.parts(config.view(for: key), model: key.model, scheduler: SlotScheduler())
        } catch {
            throw configFailure(error)
        }
    }

    /// Loads the config or exits 78 with the message on stderr. With `keyOptional` (commands
    /// an operator runs outside the unit), a key under an unset `${CREDENTIALS_DIRECTORY}` is
    /// left out with a notice.
    func load(keyOptional: Bool = false) throws -> KVWarmConfig {
        do {
            return try ConfigLoader(environment: environment, keyOptional: keyOptional).load(path: path)
        } catch {
            throw configFailure(error)
        }
    }

    /// Prints `error` (and, when the file does not exist, where the path came from and how to
    /// choose another) and returns exit 78.
    private func configFailure(_ error: any Error) -> ExitCode {
        printError("kvwarm: invalid configuration: \(error)")
        if access(path, F_OK) != 0 {
            let from = config != nil ? "--config" : environment["KVWARM_CONFIG"] != nil ? "$KVWARM_CONFIG" : "the default"
            printError("hint: \(path) (\(from)) does not exist; pass --config FILE or set KVWARM_CONFIG")
        }
        return ExitCode(SysExit.config.rawValue)
    }
}

struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "Log format: auto (journal when stderr is the journal), journal, text or json.")
    var logFormat: LogFormatArgument = .auto

    @Option(name: .long, help: "Minimum log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: LogLevelArgument = .info

    func bootstrap() -> Logger {
        LoggingSetup.bootstrap(format: logFormat.value, level: logLevel.value,
                               environment: ProcessEnvironment.current)
        var logger = Logger(label: "kvwarm")
        logger.logLevel = logLevel.value
        return logger
    }
}

struct LogFormatArgument: ExpressibleByArgument {
    var value: LogFormat
    init?(argument: String) {
        guard let v = LogFormat(rawValue: argument) else { return nil }
        value = v
    }
    init(_ v: LogFormat) { value = v }
    static let auto = LogFormatArgument(.auto)
    static var allValueStrings: [String] { LogFormat.allCases.map(\.rawValue) }
}

struct LogLevelArgument: ExpressibleByArgument {
    var value: Logger.Level
    init?(argument: String) {
        guard let v = Logger.Level(rawValue: argument) else { return nil }
        value = v
    }
    init(_ v: Logger.Level) { value = v }
    static let info = LogLevelArgument(.info)
    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}

func printError(_ s: String) {
    let bytes = Array((s + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return }
        done += n
    }
}
