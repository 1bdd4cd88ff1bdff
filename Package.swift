// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Kernels",
    products: [
        .library(name: "Kernels", targets: ["Kernels"])
    ],
    targets: [
        // Debian's OpenBLAS (pthread build) and LAPACKE, found through pkg-config.
        .systemLibrary(
            name: "CBLAS",
            path: "Modules/CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .target(
            name: "Kernels",
            dependencies: ["CBLAS"]
        ),
        .testTarget(
            name: "KernelsTests",
            dependencies: ["Kernels", "CBLAS"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
