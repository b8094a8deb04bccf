#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process environment (`environ`) as a dictionary; for a repeated name the first wins,
/// as `getenv` does.
public enum ProcessEnvironment {
    public static var current: [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                let name = String(s[..<eq])
                if out[name] == nil { out[name] = String(s[s.index(after: eq)...]) }
            }
            p += 1
        }
        return out
    }
}
