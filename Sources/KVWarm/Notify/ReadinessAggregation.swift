/// Folds the service-manager notifications of several pipelines into those of one service:
/// READY=1 once every pipeline has sent it, and one STATUS naming each pipeline.
///
/// Pure: ``received(_:from:)`` returns the datagram to send, if any; ``ReadinessAggregator``
/// sends it.
public struct ReadinessAggregation: Sendable, Equatable {
    public let pipelines: [PipelineKey]
    private var statuses: [PipelineKey: String] = [:]
    private var ready: Set<PipelineKey> = []
    public private(set) var sentReady = false
    private var sentStopping = false

    /// The STATUS text of a pipeline whose router model is not loaded starts with this.
    public static let unloadedPrefix = "unloaded"

    /// The STATUS of a pipeline whose router model `model` (with `templates` templates) is not loaded.
    public static func unloadedStatus(model: String, templates: Int) -> String {
        "\(unloadedPrefix): router model \(model) is not loaded; \(Counted.of(templates, "template")) warmed when it loads"
    }

    public init(pipelines: [PipelineKey]) { self.pipelines = pipelines }

    /// What to send for `message` (a `KEY=VALUE\n…` notification) from pipeline `key`.
    public mutating func received(_ message: String, from key: PipelineKey) -> String? {
        var fields: [(String, String)] = []
        for line in message.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields.append((String(line[..<eq]), String(line[line.index(after: eq)...])))
        }
        func value(_ k: String) -> String? { fields.first { $0.0 == k }?.1 }
        if let s = value("STATUS") { statuses[key] = s }
        if value("STOPPING") != nil {
            guard !sentStopping else { return nil }
            sentStopping = true
            return "STOPPING=1\nSTATUS=stopping"
        }
        if let errno = value("ERRNO") {
            return "STATUS=\(key): \(statuses[key] ?? "failed")\nERRNO=\(errno)"
        }
        if value("READY") != nil {
            ready.insert(key)
            if ready.count == pipelines.count, !sentReady {
                sentReady = true
                return "READY=1\nSTATUS=\(status)"
            }
            return "STATUS=\(status)"
        }
        if let usec = value("EXTEND_TIMEOUT_USEC") {
            return sentReady ? "STATUS=\(status)" : "EXTEND_TIMEOUT_USEC=\(usec)\nSTATUS=\(status)"
        }
        if value("STATUS") != nil { return "STATUS=\(status)" }
        return message
    }

    /// `N of M models unloaded; ` when some are, then each pipeline's STATUS (`starting` before its first).
    public var status: String {
        let models = pipelines.filter { $0.model != nil }
        let unloaded = models.filter { statuses[$0]?.hasPrefix(Self.unloadedPrefix) ?? false }.count
        let head = unloaded > 0 ? "\(unloaded) of \(models.count) models unloaded; " : ""
        return head + pipelines.map { "\($0): \(statuses[$0] ?? "starting")" }.joined(separator: "; ")
    }
}
