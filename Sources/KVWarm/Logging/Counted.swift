/// Counts written for people: `1 template`, `2 templates`, `0 templates`.
public enum Counted {
    /// `n` followed by `singular`, or by `plural` (default: `singular` + "s") when `n` is not 1.
    public static func of(_ n: Int, _ singular: String, plural: String? = nil) -> String {
        "\(n) \(n == 1 ? singular : plural ?? singular + "s")"
    }
}
