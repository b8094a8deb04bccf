import Testing
@testable import KVWarm

/// READY=1 once every pipeline is ready, one STATUS naming each.
@Suite struct ReadinessAggregationTests {
    static let a = PipelineKey(backend: "gpu0")
    static let m = PipelineKey(backend: "router", model: "alpha")

    @Test func readyGoesOutOnceEveryPipelineIsReady() {
        var agg = ReadinessAggregation(pipelines: [Self.a, Self.m])
        #expect(agg.received("EXTEND_TIMEOUT_USEC=20000000\nSTATUS=warming 1/2", from: Self.a)
                == "EXTEND_TIMEOUT_USEC=20000000\nSTATUS=gpu0: warming 1/2; router/alpha: starting")
        #expect(agg.received("READY=1\nSTATUS=watching 2 templates (0 failed)", from: Self.a)
                == "STATUS=gpu0: watching 2 templates (0 failed); router/alpha: starting", "not yet: alpha is not ready")
        #expect(!agg.sentReady)
        #expect(agg.received("READY=1\nSTATUS=unloaded: router model alpha is not loaded; 1 template warmed when it loads", from: Self.m)
                == "READY=1\nSTATUS=1 of 1 models unloaded; gpu0: watching 2 templates (0 failed); router/alpha: unloaded: router model alpha is not loaded; 1 template warmed when it loads")
        #expect(agg.sentReady)
        #expect(agg.received("STATUS=watching 1 template (model loaded)", from: Self.m)
                == "STATUS=gpu0: watching 2 templates (0 failed); router/alpha: watching 1 template (model loaded)")
        #expect(agg.received("EXTEND_TIMEOUT_USEC=5\nSTATUS=x", from: Self.a)?.hasPrefix("STATUS=") == true,
                "no start timeout to extend once ready")
    }

    @Test func stoppingOnceAndFailuresNameThePipeline() {
        var agg = ReadinessAggregation(pipelines: [Self.a, Self.m])
        #expect(agg.received("STATUS=failed: backend down\nERRNO=113", from: Self.a) == "STATUS=gpu0: failed: backend down\nERRNO=113")
        #expect(agg.received("STOPPING=1\nSTATUS=stopping", from: Self.a) == "STOPPING=1\nSTATUS=stopping")
        #expect(agg.received("STOPPING=1\nSTATUS=stopping", from: Self.m) == nil)
        #expect(agg.received("WATCHDOG=1", from: Self.m) == "WATCHDOG=1")
    }

    @Test func theAggregatorOpensItsGateWithReady() async {
        let sent = SentMessages()
        let agg = ReadinessAggregator(pipelines: [Self.a, Self.m], base: sent)
        _ = Notifier(transport: agg.transport(for: Self.a)).ready(status: "ok")
        #expect(sent.all == ["STATUS=gpu0: ok; router/alpha: starting"])
        _ = Notifier(transport: agg.transport(for: Self.m)).ready(status: "ok")
        await agg.gate.wait()
        #expect(sent.all.last == "READY=1\nSTATUS=gpu0: ok; router/alpha: ok")
    }
}

import Synchronization

/// A notify transport that records what it was given.
final class SentMessages: NotifyTransport {
    private let messages = Mutex<[String]>([])
    func send(_ state: String) -> Bool { messages.withLock { $0.append(state) }; return true }
    var all: [String] { messages.withLock { $0 } }
}
