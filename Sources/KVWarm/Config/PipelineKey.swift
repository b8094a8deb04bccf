
/// Names one warm pipeline: a backend, and on a llama-server router one of its models.
///
/// Each pipeline has its own queue, backend monitor and state file, so a slow or dead backend
/// (or an unloaded model) never holds up another.
public struct PipelineKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var backend: String
    public var model: String?

    public init(backend: String = KVWarmConfig.defaultBackendName, model: String? = nil) {
        self.backend = backend
        self.model = model
    }

    /// `backend` or `backend/model`, as logs and STATUS name the pipeline.
    public var description: String { model.map { "\(backend)/\($0)" } ?? backend }

    /// The pipeline of a configuration with one backend and no models.
    public var isDefault: Bool { backend == KVWarmConfig.defaultBackendName && model == nil }

    /// The state file's name in `state_dir`: `state.json` for ``isDefault`` (as before there were
    /// several backends), else `state.<backend>[.<model>].json` with the name reduced to `[A-Za-z0-9_.-]` and
    /// the first 8 hex digits of its SHA-256 added whenever that reduction changed it.
    public var stateFileName: String {
        if isDefault { return "state.json" }
        let label = model.map { "\(backend).\($0)" } ?? backend
        var safe = ""
        for scalar in label.unicodeScalars.prefix(80) {
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-", ".": safe.unicodeScalars.append(scalar)
            default: safe.append("_")
            }
        }
        if safe != label {
            safe += "-" + HexEncoding.lowercase(SHA256.hash(data: Array(label.utf8))).prefix(8)
        }
        return "state.\(safe).json"
    }

    public static func < (a: PipelineKey, b: PipelineKey) -> Bool {
        (a.backend, a.model ?? "") < (b.backend, b.model ?? "")
    }
}
