"""The SDK platforms: what each accepts, registered with the shared registry idiom.

Everything a platform emits lives in ``templates/<name>/``; a platform entry is data only.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.registry import Registry


@dataclass(frozen=True)
class Platform:
    name: str
    formats: tuple[str, ...]  # artifact formats its runtime can load
    description: str


platforms: Registry[Platform] = Registry("SDK platform")

for _platform in (
    Platform(
        "android",
        ("tflite",),
        "Gradle library module in Kotlin on LiteRT's CompiledModel, with grpc-okhttp for the cloud",
    ),
    Platform("ios", ("tflite",), "Swift Package on LiteRT (google-ai-edge/LiteRT), with grpc-swift for the cloud"),
    Platform("python", ("tflite", "onnx"), "pip-installable package on ai-edge-litert or onnxruntime, with grpcio"),
):
    platforms.register(_platform.name)(_platform)
