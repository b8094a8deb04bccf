import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Reads a template and its includes as one ``TemplateSnapshot``.
///
/// Includes are `<{path}>` (bioproxy's syntax, not recursive): absolute, or
/// relative to the template's directory. After following every symlink the
/// file must lie inside one of `includeRoots`; anything else — a `../` escape,
/// an absolute path elsewhere, a symlink pointing out, a symlink loop — is a
/// ``TemplateProblem`` for that template, never text sent to the model.
public struct SnapshotLoader: Sendable {
    public var includeRoots: [String]
    public var maxBytes: Int

    public init(includeRoots: [String], maxBytes: Int) {
        // compare against the roots' real paths so a symlinked root still confines
        self.includeRoots = includeRoots.map { FileProbe.realpath($0) ?? $0 }
        self.maxBytes = maxBytes
    }

    /// The include references in `text`, in order of first appearance.
    public static func includeReferences(in text: String) -> [String] {
        var refs: [String] = []
        var seen: Set<String> = []
        for token in PlaceholderScanner.tokens(in: text) {
            let ref = String(text[token.inner])
            if ref != "message", !ref.isEmpty, !ref.contains("\n"), seen.insert(ref).inserted { refs.append(ref) }
        }
        return refs
    }

    /// Loads `spec` now.
    public func load(_ spec: TemplateSpec) -> Result<TemplateSnapshot, TemplateProblem> {
        let text: String
        switch readText(spec.path) {
        case .success(let t): text = t
        case .failure(let p): return .failure(p)
        }
        if text.isEmpty { return .failure(.empty(path: spec.path)) }
        guard spec.isRequest else {
            return readIncludes(Self.includeReferences(in: text), of: spec).map {
                TemplateSnapshot(spec: spec, text: text, includes: $0)
            }
        }
        let parsed: RequestTemplate.Parsed
        do { parsed = try RequestTemplate.parse(text) } catch {
            return .failure(.requestInvalid(path: spec.path, problem: error))
        }
        return readIncludes(parsed.includeReferences, of: spec).map { includes in
            let request = parsed.expanded(includes: Dictionary(includes.map { ($0.reference, $0.content) }) { a, _ in a })
            return TemplateSnapshot(spec: spec, text: request.body, includes: includes, request: request)
        }
    }

    /// Reads the includes `refs` of `spec`, each confined to the include roots.
    private func readIncludes(_ refs: [String], of spec: TemplateSpec) -> Result<[TemplateSnapshot.Include], TemplateProblem> {
        let dir = LexicalPath.parent(spec.path)
        var includes: [TemplateSnapshot.Include] = []
        for ref in refs {
            let lexical = ref.hasPrefix("/") ? ref : dir + "/" + ref
            let path = LexicalPath.normalize(lexical)
            guard let real = FileProbe.realpath(path) else {
                let e = errno
                if e == ENOENT {
                    // a dangling symlink or a missing file; say where it would have pointed
                    return .failure(.includeMissing(reference: ref, path: path))
                }
                return .failure(.includeUnreadable(reference: ref, reason: String(cString: strerror(e))))
            }
            guard includeRoots.contains(where: { real == $0 || real.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) else {
                return .failure(.includeOutsideRoots(reference: ref, resolved: real))
            }
            switch readText(real) {
            case .success(let content): includes.append(.init(reference: ref, path: path, content: content))
            case .failure(let p): return .failure(.includeUnreadable(reference: ref, reason: p.description))
            }
        }
        return .success(includes)
    }

    /// The files a template that failed to load depends on: its own path and, when its text
    /// can be read, the path of every include it names, present or not. So fixing or creating
    /// any of them brings the template back.
    public func dependencies(of spec: TemplateSpec) -> Set<String> {
        var paths: Set<String> = [spec.path]
        guard case .success(let text) = readText(spec.path) else { return paths }
        let dir = LexicalPath.parent(spec.path)
        let refs = spec.isRequest ? ((try? RequestTemplate.parse(text))?.includeReferences ?? Self.includeReferences(in: text))
                                  : Self.includeReferences(in: text)
        for ref in refs {
            paths.insert(LexicalPath.normalize(ref.hasPrefix("/") ? ref : dir + "/" + ref))
        }
        return paths
    }

    func readText(_ path: String) -> Result<String, TemplateProblem> {
        let fd: FileDescriptor
        do {
            // O_NONBLOCK so a FIFO in place of a template cannot hang the pipeline
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.nonBlocking, .closeOnExec])
        } catch let e as Errno where e == .noSuchFileOrDirectory {
            return .failure(.missing(path: path))
        } catch {
            return .failure(.unreadable(path: path, reason: "\(error)"))
        }
        defer { try? fd.close() }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else {
            return .failure(.unreadable(path: path, reason: String(cString: strerror(errno))))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(.notRegularFile(path: path)) }
        if Int(st.st_size) > maxBytes { return .failure(.tooLarge(path: path, bytes: Int(st.st_size), limit: maxBytes)) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
            } catch {
                return .failure(.unreadable(path: path, reason: "\(error)"))
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maxBytes { return .failure(.tooLarge(path: path, bytes: bytes.count, limit: maxBytes)) }
        }
        guard let s = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
            return .failure(.notUTF8(path: path))
        }
        return .success(s)
    }
}
