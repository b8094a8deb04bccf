// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "kvwarm",
    products: [
        .executable(name: "kvwarm", targets: ["kvwarm"]),
        .library(name: "KVWarm", targets: ["KVWarm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(
            name: "KVWarm",
            dependencies: [
                "CCurl",
                "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "kvwarm",
            dependencies: [
                "KVWarm",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: [
                // lld (shipped with the toolchain) packs the ~90,000 relative relocations of a
                // static-stdlib PIE into a RELR bitmap (2 MB of .rela.dyn becomes 9 KB, none of it
                // read at startup), and the executable exports no symbols (the static stdlib's
                // link file asks for -export-dynamic: 8,000 symbols nothing looks up).
                // docs/benchmarks.md, "Where an idle kvwarm's memory goes", has the figures.
                .unsafeFlags([
                    "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                    "-Xlinker", "--no-export-dynamic",
                ]),
            ]
        ),
        .target(
            name: "KVWarmTestSupport",
            dependencies: ["KVWarm"],
            path: "Tests/KVWarmTestSupport"
        ),
        .testTarget(
            name: "KVWarmServerTests",
            dependencies: ["KVWarm", "KVWarmTestSupport"]
        ),
        .testTarget(
            name: "KVWarmTests",
            dependencies: [
                "KVWarm", "KVWarmTestSupport",
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
