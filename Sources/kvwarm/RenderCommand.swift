import ArgumentParser
import KVWarm

/// `kvwarm render NAME`: the exact prompt the server will see, and its warmable prefix.
struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print a template's prompt as the server renders it and the warmable prefix in tokens.")

    @OptionGroup var config: ConfigOptions
    @Argument(help: "Template name.") var name: String

    /// Which top-level fields of a request template shape the prompt, and which do not.
    static func fieldsLine(_ r: RequestTemplate) -> String {
        let used = r.fields.filter { RequestTemplate.renderingFields.contains($0) }.map { f in
            switch f {
            case "messages": "messages (\(r.messageCount))"
            case "tools": "tools (\(r.toolCount))"
            default: f
            }
        }
        let other = r.fields.filter { !RequestTemplate.renderingFields.contains($0) }
        var line = "fields:          \(used.joined(separator: ", ")) took part in the prompt"
        if !other.isEmpty { line += "\n                 \(other.joined(separator: ", ")): sent, but they shape sampling or the answer, not the prompt" }
        return line
    }

    func run() async throws {
        let c = try config.load()
        guard let spec = c.template(named: name) else {
            printError("kvwarm: no such template: \(name); configured: \(c.templates.map(\.name).joined(separator: ", "))")
            throw ExitCode(SysExit.usage.rawValue)
        }
        // rendered by the template's own backend (and router model)
        let parts = try config.parts(c, spec.pipeline)
        let snapshot: TemplateSnapshot
        switch parts.loader.load(spec) {
        case .success(let s): snapshot = s
        case .failure(let p):
            printError("kvwarm: \(name): \(p)")
            throw ExitCode(SysExit.dataError.rawValue)
        }
        let rendered = TemplateRenderer.render(snapshot)
        do {
            // one rendering by the server, cut as the warm cuts it
            let full = if let request = snapshot.request {
                try await parts.builder.serverRendering(request)
            } else {
                try await parts.builder.serverRendering(rendered, spec: spec)
            }
            let prefix = try WarmPromptBuilder.cut(full, exactlyOnce: snapshot.request != nil)
            let shown = full.replacing(WarmPromptBuilder.sentinel, with: "<{message}>")
            print(shown)
            let prefixTokens = try await parts.client.tokenize(prefix).count
            let fullTokens = try await parts.client.tokenize(full.replacing(WarmPromptBuilder.sentinel, with: "")).count
            let kind = snapshot.request == nil ? "\(spec.endpoint.rawValue), role \(spec.role.rawValue)" : "request template"
            printError("""
                --
                template:        \(name) (\(kind), digest \(snapshot.digest.prefix(12)))
                warmable prefix: \(prefixTokens) tokens (everything before <{message}>)
                whole prompt:    \(fullTokens) tokens with an empty message
                """)
            if let request = snapshot.request { printError(Self.fieldsLine(request)) }
            if prefixTokens < 64 {
                printError("warning: only \(prefixTokens) tokens precede <{message}>: warming this template saves little; move <{message}> towards the end")
            }
        } catch let e as WarmPromptBuilder.Failure {
            if case .rejected = e {
                printError("kvwarm: \(name): \(e) (backend \(parts.config.backend.address))")
                throw ExitCode(SysExit.dataError.rawValue)
            }
            printError("kvwarm: \(name): \(e) (backend \(parts.config.backend.address))")
            throw ExitCode(SysExit.unavailable.rawValue)
        } catch let e as BackendError {
            printError("kvwarm: \(name): \(e) (backend \(parts.config.backend.address))")
            throw ExitCode(SysExit.unavailable.rawValue)
        }
    }
}
