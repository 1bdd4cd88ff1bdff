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
        // AVX2 + FMA micro-kernels in C, compiled for those instructions per function and
        // dispatched at run time, since a versioned package cannot pass -mavx2 to Swift.
        .target(name: "KernelsSIMD"),
        .target(
            name: "Kernels",
            dependencies: ["CBLAS", "KernelsSIMD"]
        ),
        .testTarget(
            name: "KernelsTests",
            dependencies: ["Kernels", "CBLAS"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
