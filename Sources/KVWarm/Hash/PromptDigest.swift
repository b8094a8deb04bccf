
/// The digest of a rendered warm prompt, to tell whether two renderings are the same text.
public enum PromptDigest {
    /// Lowercase hex SHA-256 of `prompt`'s UTF-8 bytes.
    public static func of(_ prompt: String) -> String {
        HexEncoding.lowercase(SHA256.hash(data: Array(prompt.utf8)))
    }
}
