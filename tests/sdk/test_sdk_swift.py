"""The generated Swift Package parses with the tree-sitter Swift grammar: no ERROR or MISSING nodes anywhere."""

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


def test_every_swift_file_parses(sdk_build):
    ios = sdk_build.sdk_dirs["ios"]
    files = sorted(ios.rglob("*.swift"))
    assert ios / "Package.swift" in files and len(files) >= 6, files
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
    assert len(files) >= 6 and {k: v for k, v in problems.items() if v} == {}
