"""The generated Swift Package: every file parses with the tree-sitter Swift grammar (no ERROR or MISSING nodes),
and every module a source imports is a product Package.swift declares (or an Apple SDK module)."""

from __future__ import annotations

from pathlib import Path


def _problems(source: bytes) -> list[str]:
    import tree_sitter
    import tree_sitter_swift

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    found, stack = [], [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            found.append(f"{'MISSING' if node.is_missing else 'ERROR'} {node.type} at {node.start_point}")
        stack.extend(node.children)
    return found


def test_the_checker_catches_a_syntax_error():
    assert _problems(b"public final class X { func f( { }\n")
    assert _problems(b"public final class X { func f() {} }\n") == []


# Modules of the Apple SDKs (no package provides them).
SYSTEM_MODULES = {"Foundation", "CryptoKit", "Dispatch", "PackageDescription"}


def _imports(source: bytes) -> set[str]:
    """Module names of the file's import declarations, read from the tree-sitter syntax tree."""
    import tree_sitter
    import tree_sitter_swift

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    found, stack = set(), [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "import_declaration":
            found.add(node.text.decode().split()[-1])
        stack.extend(node.children)
    return found


def _declared_products(package_swift: str) -> dict[str, str]:
    """product name -> package, from the target's ``.product(name:package:)`` entries; every package dependency
    must provide at least one."""
    import re

    products = dict(re.findall(r'\.product\(name: "([^"]+)", package: "([^"]+)"\)', package_swift))
    urls = re.findall(r'\.package\(url: "https://github\.com/[^/]+/([^"]+?)(?:\.git)?"', package_swift)
    assert {u.lower() for u in urls} == {p.lower() for p in products.values()}, (urls, products)
    return products


def test_the_import_check_catches_an_undeclared_module():
    products = _declared_products(
        'dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0")]\n'
        '.product(name: "NIOCore", package: "swift-nio")'
    )
    assert _imports(b"import Foundation\nimport NIOPosix\n") - SYSTEM_MODULES - set(products) == {"NIOPosix"}


def test_every_imported_module_is_declared_in_package_swift(sdk_build):
    ios = sdk_build.sdk_dirs["ios"]
    products = _declared_products((ios / "Package.swift").read_text())
    imported = {str(f.relative_to(ios)): _imports(f.read_bytes()) for f in ios.rglob("Sources/**/*.swift")}
    assert {"LiteRT", "GRPC", "SwiftProtobuf", "NIOCore", "NIOSSL"} <= set().union(*imported.values())
    undeclared = {f: sorted(m - SYSTEM_MODULES - set(products)) for f, m in imported.items()}
    assert {f: m for f, m in undeclared.items() if m} == {}
    unused = set(products) - set().union(*imported.values())
    assert unused == set(), f"Package.swift declares products no source imports: {unused}"


def test_every_swift_file_parses(sdk_build):
    ios = sdk_build.sdk_dirs["ios"]
    files = sorted(ios.rglob("*.swift"))
    assert ios / "Package.swift" in files and len(files) >= 10, files
    problems = {str(f.relative_to(ios)): _problems(f.read_bytes()) for f in files}
    assert {k: v for k, v in problems.items() if v} == {}


def test_split_mode_swift_parses(tmp_path):
    """The split-mode rendering (head resource, split parts) from the golden manifest plus a split vector's section."""
    import json

    from sdk_support import cases

    from sdkgen.render import PROTO, context_for, render_platform
    from sdkgen.spec import SdkSpec

    golden = Path(__file__).resolve().parents[1] / "golden" / "model-manifest.json"
    base = json.loads(golden.read_text())
    vector = next(c for c in cases(base) if c["name"] == "split_head_and_tail")
    manifest = {**base, "policy": vector["manifest"]["policy"], "split": vector["manifest"]["split"]}
    path, model = tmp_path / "model-manifest.json", tmp_path / "model.tflite"
    path.write_text(json.dumps(manifest))
    model.write_bytes(b"model")
    spec = SdkSpec(
        name="DigitsClassifier", package="com.example.digits", platforms=("ios",), labels=tuple(base["labels"])
    )
    assets = {"model": model, "head": model, "manifest": path, "schema": path, "proto": PROTO}
    render_platform("ios", context_for(spec, manifest), assets, tmp_path / "ios")
    assert (tmp_path / "ios" / "Sources/DigitsClassifier/Resources/split/head.tflite").read_bytes() == b"model"
    package = (tmp_path / "ios" / "Package.swift").read_text()
    assert '.copy("Resources/split/head.tflite")' in package
    files = sorted((tmp_path / "ios").rglob("*.swift"))
    problems = {str(f.relative_to(tmp_path)): _problems(f.read_bytes()) for f in files}
    assert len(files) >= 10 and {k: v for k, v in problems.items() if v} == {}
