// swift-tools-version:5.9
import PackageDescription

// LiteRT is added by its release branch: its package has no version tags, and its target uses linker flags that
// SwiftPM accepts only from branch or revision dependencies. The OIP messages are pre-generated Swift sources
// (Sources/DigitsClassifier/OIP.swift), so no protoc or build plugin is needed.
let package = Package(
    name: "DigitsClassifier",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "DigitsClassifier", targets: ["DigitsClassifier"]),
    ],
    dependencies: [
        .package(url: "https://github.com/google-ai-edge/LiteRT.git", branch: "2.1.6"),
        .package(url: "https://github.com/grpc/grpc-swift.git", from: "1.26.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.23.0"),
    ],
    targets: [
        .target(
            name: "DigitsClassifier",
            dependencies: [
                .product(name: "LiteRT", package: "LiteRT"),
                .product(name: "GRPC", package: "grpc-swift"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [
                .copy("Resources/model.tflite"),
                .copy("Resources/model-manifest.json"),
            ]
        ),
    ]
)
