"""The generated Swift Package parses with the tree-sitter Swift grammar: no ERROR or MISSING nodes anywhere."""

from __future__ import annotations

import pytest


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
