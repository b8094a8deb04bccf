import Testing
@testable import KVWarm

struct LexicalPathParentTests {
    @Test(arguments: [("/a/b", "/a"), ("/a", "/"), ("/", "/"), ("a/b/", "a"), ("a", ""), ("/a//b", "/a"), ("//a", "/")])
    func parentIsTextual(path: String, parent: String) {
        #expect(LexicalPath.parent(path) == parent)
    }
}
