// swift-tools-version:6.0
import PackageDescription

// The benchmark harness is a package of its own, so projects that depend on Kernels never
// resolve or build its command-line dependencies.
let package = Package(
    name: "KernelsBenchmarks",
    products: [
        .executable(name: "kernels-bench", targets: ["KernelsBench"])
    ],
    dependencies: [
        // Named, because a path dependency's identity is otherwise its folder's name, which
        // depends on where the repository was cloned.
        .package(name: "Kernels", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .executableTarget(
            name: "KernelsBench",
            dependencies: [
                .product(name: "Kernels", package: "Kernels"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
