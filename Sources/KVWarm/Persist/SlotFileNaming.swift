/// How kvwarm names the KV files it asks llama-server to write.
///
/// `<safe-name>-<digest12>.bin`, saved first as `….bin.partial` and renamed
/// when `backend.slot_save_dir` is known, so a crash mid-save never leaves a
/// truncated file under a name kvwarm would restore. Only names of this shape
/// are ever pruned or swept.
public enum SlotFileNaming {
    /// The template name reduced to `[A-Za-z0-9_-]` (other characters become `_`), at most 100 bytes.
    ///
    /// llama-server rejects `/`, `\`, `..`, control characters and more in
    /// slot file names; this alphabet is safe and can never traverse directories.
    public static func safeName(_ name: String) -> String {
        var out = ""
        for scalar in name.unicodeScalars {
            if out.utf8.count >= 100 { break }
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-": out.unicodeScalars.append(scalar)
            default: out.append("_")
            }
        }
        return out.isEmpty ? "_" : out
    }

    /// The safe stem of a template's KV files: the template name, prefixed with the router model
    /// and `--` when it has one (all models of a router write into one `--slot-save-path`).
    public static func stem(template: String, model: String?) -> String {
        safeName(model.map { "\($0)--\(template)" } ?? template)
    }

    /// The KV file for a template (of router model `model`) at a content digest (hex SHA-256).
    public static func fileName(template: String, model: String? = nil, digest: String) -> String {
        "\(stem(template: template, model: model))-\(digest.prefix(12)).bin"
    }

    /// The temporary name a save is written under before the rename.
    public static func partialName(of fileName: String) -> String { fileName + ".partial" }

    /// Whether `fileName` has kvwarm's shape (final or partial).
    public static func isKVWarmFile(_ fileName: String) -> Bool {
        var s = Substring(fileName)
        if s.hasSuffix(".partial") { s = s.dropLast(8) }
        guard s.hasSuffix(".bin") else { return false }
        s = s.dropLast(4)
        guard s.count > 13, let dash = s.lastIndex(of: "-") else { return false }
        let hex = s[s.index(after: dash)...]
        let stem = s[..<dash]
        guard hex.count == 12, hex.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) })
        else { return false }
        return !stem.isEmpty && stem.unicodeScalars.allSatisfy {
            ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }
    }

    /// The safe template name a kvwarm file was saved for; nil for a file of another shape.
    public static func templateStem(of fileName: String) -> String? {
        guard isKVWarmFile(fileName) else { return nil }
        var s = Substring(fileName)
        if s.hasSuffix(".partial") { s = s.dropLast(8) }
        s = s.dropLast(4)
        return s.lastIndex(of: "-").map { String(s[..<$0]) }
    }

    /// Whether `fileName` is a leftover partial save.
    public static func isPartial(_ fileName: String) -> Bool {
        fileName.hasSuffix(".partial") && isKVWarmFile(fileName)
    }
}
