import Synchronization

/// Gives each pipeline a ``NotifyTransport`` of its own and sends what their
/// ``ReadinessAggregation`` makes of it through the service's real transport; opens `gate`
/// when the aggregated READY=1 goes out.
public final class ReadinessAggregator: Sendable {
    private let state: Mutex<ReadinessAggregation>
    private let base: any NotifyTransport
    /// Open once every pipeline is ready.
    public let gate = ReadinessGate()

    public init(pipelines: [PipelineKey], base: any NotifyTransport) {
        state = Mutex(ReadinessAggregation(pipelines: pipelines))
        self.base = base
    }

    /// The transport pipeline `key`'s notifier sends through.
    public func transport(for key: PipelineKey) -> any NotifyTransport { PipelineTransport(key: key, aggregator: self) }

    fileprivate func received(_ message: String, from key: PipelineKey) -> Bool {
        let (out, readyNow) = state.withLock { s -> (String?, Bool) in
            let before = s.sentReady
            let out = s.received(message, from: key)
            return (out, !before && s.sentReady)
        }
        let sent = out.map { base.send($0) } ?? true
        if readyNow { gate.open() }
        return sent
    }
}

/// One pipeline's side of a ``ReadinessAggregator``.
private struct PipelineTransport: NotifyTransport {
    let key: PipelineKey
    let aggregator: ReadinessAggregator

    func send(_ state: String) -> Bool { aggregator.received(state, from: key) }
}
