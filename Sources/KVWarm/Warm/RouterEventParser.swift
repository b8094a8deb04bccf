
/// Reads the router's `GET /models/sse` stream: `data: {json}` frames separated by blank lines,
/// the event's name inside the JSON (`{"model":…, "event":…, "data":{"status":…}}`).
///
/// Feed it the bytes as they come; it returns the model events whose frames are complete.
public struct RouterEventParser: Sendable {
    /// One model's load state changing (`model_status` when a load starts, `status_change` after).
    public struct Event: Sendable, Equatable {
        public var model: String
        public var event: String
        /// `loading`, `loaded`, `unloaded`, `sleeping`, …; nil when the frame has none.
        public var status: String?
    }

    private var pending: [UInt8] = []

    public init() {}

    public mutating func feed(_ bytes: [UInt8]) -> [Event] {
        pending += bytes.filter { $0 != 0x0D }
        var out: [Event] = []
        while let end = Self.frameEnd(pending) {
            let frame = String(decoding: pending[..<end], as: UTF8.self)
            pending.removeFirst(end + 2)
            let data = frame.split(separator: "\n").filter { $0.hasPrefix("data:") }
                .map { $0.dropFirst(5).drop(while: { $0 == " " }) }.joined(separator: "\n")
            guard let o = AnyJSON.object(Array(data.utf8)),
                  let model = o["model"] as? String, let event = o["event"] as? String else { continue }
            let status = (o["data"] as? [String: Any])?["status"] as? String
            out.append(Event(model: model, event: event, status: status))
        }
        return out
    }

    /// The index of the blank line ending the first frame.
    private static func frameEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 2 else { return nil }
        for i in 0..<(b.count - 1) where b[i] == 0x0A && b[i + 1] == 0x0A { return i }
        return nil
    }
}
