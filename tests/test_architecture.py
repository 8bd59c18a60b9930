"""The layers of docs/architecture.md, enforced: imports point down only and no module imports itself in a loop.

Every import counts, at module level or inside a function (a lazy import is still a dependency), type-checking
imports included for the layer rule.  Layers, lowest first:

0. foundation: errors, registry, progress, tensors, native output, atomic output folders
1. hardware profiles
2. compressor core: sources, converters, techniques, measurement, splitting, the pipeline and its passes
3. compressor bundle: report, manifest, cloud and split models; the Python API
4. SDK rendering: ``sdkgen.render``, ``platforms``, ``spec``, ``build``
5. server
6. CLI: ``sdkgen.cli``, ``commands``, ``console``, ``option_flags``, ``cmd_*``
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compressor", "sdkgen", "server")
LAYERS = {
    0: (
        "compressor.errors",
        "compressor.registry",
        "compressor.progress",
        "compressor.tensors",
        "compressor.native_output",
        "compressor.outdir",
    ),
    1: ("compressor.profiles",),
    2: ("compressor.",),
    3: ("compressor.bundle", "compressor.api", "compressor"),
    4: (
        "sdkgen.render",
        "sdkgen.platforms",
        "sdkgen.spec",
        "sdkgen.build",
        "sdkgen.schema_rules",
        "sdkgen.proto_spec",
        "sdkgen",
    ),
    5: ("server",),
    6: ("sdkgen.cli", "sdkgen.commands", "sdkgen.console", "sdkgen.option_flags", "sdkgen.cmd_"),
}
NAMES = {
    0: "foundation",
    1: "profiles",
    2: "compressor core",
    3: "compressor bundle",
    4: "SDK rendering",
    5: "server",
    6: "CLI",
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("server", "gen"):
                continue  # generated stubs
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def layer_of(module: str) -> int:
    """The layer of the longest prefix rule that matches ``module`` (a rule ending in '.' or '_' is a prefix)."""
    best, length = None, -1
    for layer, rules in LAYERS.items():
        for rule in rules:
            matches = module.startswith(rule) if rule[-1] in "._" else module == rule or module.startswith(rule + ".")
            if matches and len(rule) > length:
                best, length = layer, len(rule)
    assert best is not None, f"module {module} is in no layer; add it to LAYERS (and docs/architecture.md)"
    return best


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (anywhere in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges = {}
    for module, path in found.items():
        # importing a submodule of one's own package is not a dependency on the package's __init__
        edges[module] = {t for t in imports(path, known) if t != module and not module.startswith(t + ".")}
    return edges


def test_every_module_is_in_a_layer():
    for module in modules():
        layer_of(module)


def test_imports_point_down_only():
    upward = [
        f"{module} ({NAMES[layer_of(module)]}) imports {target} ({NAMES[layer_of(target)]})"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_cycle_and_an_upward_import():
    assert _strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) and layer_of("server.app") > layer_of(
        "compressor.api"
    )
    assert any(len(c) == 2 for c in _strongly_connected({"a": {"b"}, "b": {"a"}}))


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components
