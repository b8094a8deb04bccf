import Foundation
import Testing
@testable import KVWarm
import KVWarmTestSupport

/// `backends`, `templates.NAME.backend` and `templates.NAME.model`: one pipeline per backend
/// and router model, and errors that name the key.
@Suite struct BackendsConfigTests {
    @Test func namedBackendsAndRouterModelsMakeOnePipelineEach() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        try box.dir.write("tpl/a.txt", "A")
        try box.dir.write("tpl/b.txt", "B")
        try box.dir.write("tpl/g.txt", "G")
        let c = try box.load("""
        {"backend": {"url": "http://127.0.0.1:8080"},
         "backends": {"router": {"url": "http://127.0.0.1:9090", "slot_save_dir": "$T/slots", "check_interval_seconds": 2},
                      "gpu1": {"url": "unix:/run/llama/gpu1.sock"}},
         "templates": {"code": "$T/tpl/code.txt",
                       "a": {"path": "$T/tpl/a.txt", "backend": "router", "model": "alpha"},
                       "b": {"path": "$T/tpl/b.txt", "backend": "router", "model": "beta"},
                       "g": {"path": "$T/tpl/g.txt", "backend": "gpu1"}}}
        """)
        #expect(c.pipelines == [PipelineKey(), PipelineKey(backend: "gpu1"), PipelineKey(backend: "router", model: "alpha"),
                                PipelineKey(backend: "router", model: "beta")])
        #expect(c.backend.address == .http(baseURL: "http://127.0.0.1:8080"), "the top-level backend stays the default")
        let alpha = c.view(for: PipelineKey(backend: "router", model: "alpha"))
        #expect(alpha.templates.map(\.name) == ["a"])
        #expect(alpha.backend.address == .http(baseURL: "http://127.0.0.1:9090"))
        #expect(alpha.backend.checkInterval == .seconds(2))
        #expect(c.view(for: PipelineKey()).templates.map(\.name) == ["code"])
        #expect(c.view(for: PipelineKey(backend: "gpu1")).backend.address == .unixSocket(path: "/run/llama/gpu1.sock"))
    }

    @Test func withoutATopLevelBackendEveryTemplateNamesOne() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let ok = try box.load("""
        {"backends": {"one": {"url": "http://127.0.0.1:8080"}},
         "templates": {"code": {"path": "$T/tpl/code.txt", "backend": "one"}}}
        """)
        #expect(ok.pipelines == [PipelineKey(backend: "one")])
        #expect(ok.backend.address == .http(baseURL: "http://127.0.0.1:8080"))
        let e = box.error("""
        {"backends": {"one": {"url": "http://127.0.0.1:8080"}}, "templates": {"code": "$T/tpl/code.txt"}}
        """)
        #expect(e?.key == "templates.code.backend")
        #expect(e?.message.contains("one") == true, "\(e?.message ?? "")")
    }

    @Test func badBackendsAreRefusedNamingTheKey() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let cases: [(String, String)] = [
            (#"{"backend": {"url": "http://h:1"}, "templates": {"code": {"path": "$T/tpl/code.txt", "backend": "nope"}}}"#,
             "templates.code.backend"),
            (#"{"backend": {"url": "http://h:1"}, "backends": {"default": {"url": "http://h:2"}}, "templates": {"code": "$T/tpl/code.txt"}}"#,
             "backends.default"),
            (#"{"backends": {"a/b": {"url": "http://h:2"}}, "templates": {"code": "$T/tpl/code.txt"}}"#, "backends.a/b"),
            (#"{"backends": {"x": {"url": "http://h:2", "colour": 1}}, "templates": {"code": "$T/tpl/code.txt"}}"#, "backends.x.colour"),
            (#"{"backends": {"x": {}}, "templates": {"code": "$T/tpl/code.txt"}}"#, "backends.x.url"),
            (#"{"backends": [], "templates": {"code": "$T/tpl/code.txt"}}"#, "backends"),
            (#"{"backend": {"url": "http://h:1"}, "templates": {"code": {"path": "$T/tpl/code.txt", "model": ""}}}"#,
             "templates.code.model"),
            (#"{"templates": {"code": "$T/tpl/code.txt"}}"#, "backend"),
        ]
        for (text, key) in cases {
            let e = box.error(text)
            #expect(e?.key == key, "\(text) → \(String(describing: e))")
        }
    }

    @Test func stateFilesAndKVFileStemsIncludeTheBackendAndModel() {
        #expect(PipelineKey().stateFileName == "state.json", "one backend keeps the file it always had")
        #expect(PipelineKey(backend: "gpu1").stateFileName == "state.gpu1.json")
        #expect(PipelineKey(backend: "router", model: "alpha").stateFileName == "state.router.alpha.json")
        let odd = PipelineKey(backend: "router", model: "org/Model:Q4").stateFileName
        #expect(odd.hasPrefix("state.router.org_Model_Q4-") && odd.hasSuffix(".json") && !odd.contains("/"), "\(odd)")
        #expect(odd != PipelineKey(backend: "router", model: "org_Model_Q4").stateFileName, "reduced names stay apart")
        #expect(SlotFileNaming.fileName(template: "sys", model: "alpha", digest: String(repeating: "ab", count: 32))
                == "alpha--sys-abababababab.bin")
        #expect(SlotFileNaming.fileName(template: "sys", digest: String(repeating: "ab", count: 32)) == "sys-abababababab.bin")
        #expect(SlotFileNaming.templateStem(of: "alpha--sys-abababababab.bin") == "alpha--sys")
    }

    @Test func outsideTheUnitACredentialKeyIsLeftOutWithANotice() throws {
        let box = try ConfigSandbox()
        defer { box.dir.remove() }
        let text = #"{"backend": {"url": "http://h:1", "api_key_file": "${CREDENTIALS_DIRECTORY}/key"}, "templates": {"code": "$T/tpl/code.txt"}}"#
        #expect(box.error(text)?.key == "backend.api_key_file", "the daemon needs the key")
        let path = box.dir.file("config.json")
        let lenient = try ConfigLoader(environment: [:], keyOptional: true).load(path: path)
        #expect(lenient.backend.apiKeyFile == nil)
        #expect(lenient.notices.contains { $0.contains("only the unit sets") }, "\(lenient.notices)")
        let inUnit = try ConfigLoader(environment: ["CREDENTIALS_DIRECTORY": box.t], keyOptional: true).load(path: path)
        #expect(inUnit.backend.apiKeyFile == box.t + "/key", "under the unit the key is used")
    }
}
