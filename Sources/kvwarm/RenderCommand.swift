import ArgumentParser
import Foundation
import KVWarm

/// `kvwarm render NAME`: the exact prompt the server will see, and its warmable prefix.
struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print a template's prompt as the server renders it and the warmable prefix in tokens.")

    @OptionGroup var config: ConfigOptions
    @Argument(help: "Template name.") var name: String

    func run() async throws {
        let parts = try config.loadParts()
        guard let spec = parts.config.template(named: name) else {
            printError("kvwarm: no such template: \(name); configured: \(parts.config.templates.map(\.name).joined(separator: ", "))")
            throw ExitCode(SysExit.usage.rawValue)
        }
        let snapshot: TemplateSnapshot
        switch parts.loader.load(spec) {
        case .success(let s): snapshot = s
        case .failure(let p):
            printError("kvwarm: \(name): \(p)")
            throw ExitCode(SysExit.dataError.rawValue)
        }
        let rendered = TemplateRenderer.render(snapshot)
        do {
            let full = try await parts.builder.serverRendering(rendered, spec: spec)
            let prefix = try await parts.builder.prefix(rendered, spec: spec)
            let shown = full.replacingOccurrences(of: WarmPromptBuilder.sentinel, with: "<{message}>")
            print(shown)
            let prefixTokens = try await parts.client.tokenize(prefix).count
            let fullTokens = try await parts.client.tokenize(full.replacingOccurrences(of: WarmPromptBuilder.sentinel, with: "")).count
            printError("""
                --
                template:        \(name) (\(spec.endpoint.rawValue), role \(spec.role.rawValue), digest \(snapshot.digest.prefix(12)))
                warmable prefix: \(prefixTokens) tokens (everything before <{message}>)
                whole prompt:    \(fullTokens) tokens with an empty message
                """)
            if prefixTokens < 64 {
                printError("warning: only \(prefixTokens) tokens precede <{message}>: warming this template saves little; move <{message}> towards the end")
            }
        } catch let e as WarmPromptBuilder.Failure {
            printError("kvwarm: \(name): \(e) (backend \(parts.config.backend.address))")
            throw ExitCode(SysExit.unavailable.rawValue)
        } catch let e as BackendError {
            printError("kvwarm: \(name): \(e) (backend \(parts.config.backend.address))")
            throw ExitCode(SysExit.unavailable.rawValue)
        }
    }
}
