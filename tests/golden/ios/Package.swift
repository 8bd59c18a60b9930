// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "DigitsClassifier",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "DigitsClassifier", targets: ["DigitsClassifier"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift.git", from: "1.23.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.27.0"),
        .package(url: "https://github.com/tensorflow/tensorflow.git", from: "2.17.0"),
    ],
    targets: [
        .target(
            name: "DigitsClassifier",
            dependencies: [
                .product(name: "GRPC", package: "grpc-swift"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "TensorFlowLite", package: "tensorflow"),
            ],
            resources: [
                .copy("Resources/model.tflite"),
                .copy("Resources/model-manifest.json"),
            ],
            plugins: [
                .plugin(name: "SwiftProtobufPlugin", package: "swift-protobuf"),
                .plugin(name: "GRPCSwiftPlugin", package: "grpc-swift"),
            ]
        ),
    ]
)
