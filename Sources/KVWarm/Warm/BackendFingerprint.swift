
/// What identifies the KV layout a llama-server instance produces.
///
/// A KV file saved under one fingerprint is restored only under the same one:
/// another model file, context size, slot count / unified-KV layout or chat
/// template forces a prefill. The build string is recorded but left out of the
/// digest: a rebuilt server with the same model is logged, not re-prefilled.
public struct BackendFingerprint: Sendable, Equatable, Codable {
    public var modelPath: String
    public var totalSlots: Int
    public var nCtx: Int
    public var chatTemplateSHA256: String
    public var nParams: Int
    public var modelSize: Int
    public var nVocab: Int
    public var nEmbd: Int
    public var nCtxTrain: Int
    public var kvTag: String?
    /// `build_info`, not part of ``digest``.
    public var build: String
    /// The text of the model's end-of-sequence token (`eos_token`), not part of ``digest``.
    public var eosToken: String? = nil
    /// For a router model: the child's arguments that shape its KV (``kvArguments(_:)``).
    public var serverArgs: String? = nil

    /// Lowercase hex SHA-256 over every field but `build` and `eosToken` (`serverArgs` only when set,
    /// so single-model fingerprints keep the digest they had).
    public var digest: String {
        var fields = [
            "v1", modelPath, String(totalSlots), String(nCtx), chatTemplateSHA256, String(nParams),
            String(modelSize), String(nVocab), String(nEmbd), String(nCtxTrain), kvTag ?? "",
        ]
        if let serverArgs { fields.append(serverArgs) }
        let canonical = fields.map { "\($0.utf8.count):\($0)" }.joined(separator: "|")
        return HexEncoding.lowercase(SHA256.hash(data: Array(canonical.utf8)))
    }

    /// The fields that differ from `other` (for the log).
    public func differences(from other: BackendFingerprint) -> [String] {
        var d: [String] = []
        if modelPath != other.modelPath { d.append("model_path") }
        if totalSlots != other.totalSlots { d.append("total_slots") }
        if nCtx != other.nCtx { d.append("n_ctx") }
        if chatTemplateSHA256 != other.chatTemplateSHA256 { d.append("chat_template") }
        if nParams != other.nParams || modelSize != other.modelSize || nVocab != other.nVocab
            || nEmbd != other.nEmbd || nCtxTrain != other.nCtxTrain { d.append("model_meta") }
        if kvTag != other.kvTag { d.append("kv_tag") }
        if serverArgs != other.serverArgs { d.append("server_args") }
        if build != other.build { d.append("build_info") }
        return d
    }

    /// Reads `GET /props` and `GET /v1/models`.
    ///
    /// A router (`"role": "router"`) is refused unless `client` is for one of its models; then
    /// `/props` is the model's child's, and `/v1/models` (the router's list) gives the model's
    /// entry, whose `status.args` add ``serverArgs``. A model on a server that is not a router,
    /// or that the router does not list, is refused too.
    public static func read(from client: LlamaClient, kvTag: String?) async throws(BackendError) -> BackendFingerprint {
        let props = try await client.props()
        if props["role"] as? String == "router" {
            throw .routerMismatch("the backend is a llama-server router: give each of its templates a model (templates.NAME.model)")
        }
        let models = try await client.models()
        let settings = props["default_generation_settings"] as? [String: Any] ?? [:]
        let entries = models["data"] as? [[String: Any]] ?? []
        var data = entries.first ?? [:]
        var serverArgs: String?
        if let model = client.model {
            guard let entry = entries.first(where: { $0["id"] as? String == model || ($0["aliases"] as? [String] ?? []).contains(model) }),
                  let status = entry["status"] as? [String: Any] else {
                throw .routerMismatch("templates.NAME.model is \"\(model)\", but the backend is not a llama-server router with that model (GET /v1/models does not list it with a status)")
            }
            data = entry
            serverArgs = kvArguments(status["args"] as? [String] ?? [])
        }
        let meta = data["meta"] as? [String: Any] ?? [:]
        let template = props["chat_template"] as? String ?? ""
        guard let slots = LlamaClient.int(props["total_slots"]) else {
            throw .malformed("/props without total_slots")
        }
        return BackendFingerprint(
            modelPath: props["model_path"] as? String ?? (data["id"] as? String ?? ""),
            totalSlots: slots,
            nCtx: LlamaClient.int(settings["n_ctx"]) ?? LlamaClient.int(meta["n_ctx"]) ?? 0,
            chatTemplateSHA256: HexEncoding.lowercase(SHA256.hash(data: Array(template.utf8))),
            nParams: LlamaClient.int(meta["n_params"]) ?? 0,
            modelSize: LlamaClient.int(meta["size"]) ?? 0,
            nVocab: LlamaClient.int(meta["n_vocab"]) ?? 0,
            nEmbd: LlamaClient.int(meta["n_embd"]) ?? 0,
            nCtxTrain: LlamaClient.int(meta["n_ctx_train"]) ?? 0,
            kvTag: kvTag,
            build: props["build_info"] as? String ?? "",
            eosToken: (props["eos_token"] as? String).flatMap { $0.isEmpty ? nil : $0 }, serverArgs: serverArgs)
    }

    /// The options of a router child's argument list that change what its KV holds or how a
    /// saved slot restores (context, cache types, SWA, slots, unified KV, RoPE and batch
    /// shape), each with its value, in the order given; the port, host and alias (new on every
    /// load) and everything else are left out.
    public static func kvArguments(_ args: [String]) -> String {
        let withValue: Set<String> = [
            "-c", "--ctx-size", "-ctk", "--cache-type-k", "-ctv", "--cache-type-v", "-np", "--parallel",
            "--rope-scaling", "--rope-scale", "--rope-freq-base", "--rope-freq-scale", "--yarn-orig-ctx",
            "-fa", "--flash-attn", "--override-kv", "-ub", "--ubatch-size", "--lora", "--control-vector",
            "--swa-checkpoints", "--ctx-checkpoints",
        ]
        let flags: Set<String> = ["--swa-full", "-kvu", "--kv-unified", "--no-kv-unified", "--no-kv-offload", "-nkvo"]
        var out: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if flags.contains(a) {
                out.append(a)
            } else if withValue.contains(a), i + 1 < args.count {
                out.append(a + "=" + args[i + 1])
                i += 1
            }
            i += 1
        }
        return out.joined(separator: " ")
    }
}
