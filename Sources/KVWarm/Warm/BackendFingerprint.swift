import Crypto
import Foundation

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

    /// Lowercase hex SHA-256 over every field but `build`.
    public var digest: String {
        let canonical = [
            "v1", modelPath, String(totalSlots), String(nCtx), chatTemplateSHA256, String(nParams),
            String(modelSize), String(nVocab), String(nEmbd), String(nCtxTrain), kvTag ?? "",
        ].map { "\($0.utf8.count):\($0)" }.joined(separator: "|")
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
        if build != other.build { d.append("build_info") }
        return d
    }

    /// Reads `GET /props` and `GET /v1/models`.
    public static func read(from client: LlamaClient, kvTag: String?) async throws(BackendError) -> BackendFingerprint {
        let props = try await client.props()
        let models = try await client.models()
        let settings = props["default_generation_settings"] as? [String: Any] ?? [:]
        let data = (models["data"] as? [[String: Any]])?.first ?? [:]
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
            eosToken: (props["eos_token"] as? String).flatMap { $0.isEmpty ? nil : $0 })
    }
}
