/// The configuration and the stage objects built from it; replaced as a whole on reload.
public struct PipelineParts: Sendable {
    public var config: KVWarmConfig
    public var client: LlamaClient
    public var loader: SnapshotLoader
    public var builder: WarmPromptBuilder
    public var warmer: TemplateWarmer
    public var persister: SlotPersister

    /// Parts for `config` (one pipeline's ``KVWarmConfig/view(for:)``); with `model`, every call
    /// goes to that model of a llama-server router.
    public init(config: KVWarmConfig, transport: any HTTPTransport, scheduler: SlotScheduler, model: String? = nil) {
        self.config = config
        client = LlamaClient(transport: transport, timeout: config.backend.timeout, model: model)
        loader = SnapshotLoader(includeRoots: config.includeRoots, maxBytes: config.maxTemplateBytes)
        builder = WarmPromptBuilder(client: client)
        warmer = TemplateWarmer(client: client, scheduler: scheduler)
        persister = SlotPersister(client: client, slotSaveDir: config.backend.slotSaveDir)
    }
}
