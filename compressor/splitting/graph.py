"""Candidate cuts on the real model graph (``torch.export``) and the head/tail modules either side of one.

A cut after node *i* is a candidate when exactly one activation (a tensor that depends on the primary input,
the model's first input) is produced at or before *i* and read after it.  Nodes that do not depend on the
primary input (weights, a transformer's attention mask and whatever is derived from it) are not activations:
the tail recomputes them from its own copy of those side inputs, which travel with the intermediate tensor.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from compressor.errors import TechniqueNotApplicableError


@dataclass(frozen=True)
class Cut:
    """A position in the graph: the head computes ``node`` from the model inputs, the tail the rest from it."""

    index: int  # position of ``node`` in the graph's node order
    node: str
    shape: tuple[int, ...]
    side_inputs: tuple[str, ...]  # model inputs other than the primary one that the tail needs
    head_inputs: tuple[str, ...]  # model inputs the head reads (the primary one first)


def export_graph(module, sample_args: tuple):
    """The model's ATen graph as an ``fx.GraphModule`` (weights as attributes), from ``torch.export``."""
    import torch

    with contextlib.suppress(NotImplementedError):  # an ExportedProgram's module is already in inference form
        module.eval()
    try:
        program = torch.export.export(module, sample_args, strict=False)
    except Exception as exc:
        raise TechniqueNotApplicableError(
            f"split needs the model's graph, and torch.export could not trace it ({type(exc).__name__}: "
            f"{str(exc)[:300]}); make the forward pass traceable (no data-dependent Python control flow)"
        ) from exc
    return program.module()


def _tensor_shape(node) -> tuple[int, ...] | None:
    import torch

    value = node.meta.get("val")
    if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
        return tuple(int(d) for d in value.shape)
    return None


def _activations(gm) -> set:
    """Nodes that depend on the primary input (the first placeholder)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise TechniqueNotApplicableError("the model's graph has no inputs, so it has nothing to split")
    live = {placeholders[0]}
    for node in gm.graph.nodes:
        if node.op != "placeholder" and any(a in live for a in node.all_input_nodes):
            live.add(node)
    return live


def find_cuts(gm) -> list[Cut]:
    """Every position where exactly one floating-point activation crosses from head to tail, in graph order."""
    nodes = list(gm.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    live = _activations(gm)
    last_use = {n: max((position[u] for u in n.users), default=-1) for n in nodes}
    placeholders = [n for n in nodes if n.op == "placeholder"]
    cuts = []
    for i, node in enumerate(nodes):
        if node not in live or node.op in ("placeholder", "output"):
            continue
        crossing = [n for n in nodes[: i + 1] if n in live and last_use[n] > i]
        shape = _tensor_shape(node)
        if crossing != [node] or shape is None or nodes[last_use[node]].op == "output":
            continue
        tail_nodes = nodes[i + 1 :]
        needs = {a for n in tail_nodes for a in _ancestors_outside(n, live, set(nodes[: i + 1]))}
        side = tuple(p.name for p in placeholders[1:] if p in needs)
        reads = _needed({n.name: n for n in nodes}, [], [node.name])
        cuts.append(Cut(i, node.name, shape, side, tuple(p.name for p in placeholders if p in reads)))
    return cuts


def _ancestors_outside(node, live: set, head: set) -> set:
    """Placeholders a tail node reaches through non-activation nodes of the head (recomputed in the tail)."""
    found, stack = set(), [a for a in node.all_input_nodes if a in head and a not in live]
    while stack:
        current = stack.pop()
        if current.op == "placeholder":
            found.add(current)
        stack.extend(a for a in current.all_input_nodes if a not in live)
    return found


def subgraph(gm, inputs: list[str], outputs: list[str]):
    """A new ``GraphModule`` computing the nodes ``outputs`` from the nodes ``inputs`` (weights shared with ``gm``).

    Every other node needed is copied; a model input reached without being listed raises ValueError.
    """
    import torch.fx as fx

    by_name = {n.name: n for n in gm.graph.nodes}
    graph = fx.Graph()
    env = {}
    for name in inputs:
        env[by_name[name]] = graph.placeholder(name)
        env[by_name[name]].meta = dict(by_name[name].meta)
    needed = _needed(by_name, inputs, outputs)
    for node in gm.graph.nodes:
        if node in needed and node not in env:
            if node.op == "placeholder":
                raise ValueError(f"node {node.name} needs model input {node.name}, which is not among {inputs}")
            env[node] = graph.node_copy(node, lambda n: env[n])
    results = [env[by_name[name]] for name in outputs]
    graph.output(results[0] if len(results) == 1 else tuple(results))
    graph.eliminate_dead_code()
    return fx.GraphModule(gm, graph)


def _needed(by_name: dict, inputs: list[str], outputs: list[str]) -> set:
    stop = {by_name[n] for n in inputs}
    needed, stack = set(), [by_name[n] for n in outputs]
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        if node not in stop:
            stack.extend(node.all_input_nodes)
    return needed


def model_outputs(gm) -> list[str]:
    """Names of the nodes the graph returns, in order."""
    import torch.fx as fx

    output = next(n for n in gm.graph.nodes if n.op == "output")
    flat = fx.node.map_arg(output.args[0], lambda n: n)
    items = flat if isinstance(flat, (list, tuple)) else [flat]
    return [n.name for n in items]


def input_names(gm) -> list[str]:
    return [n.name for n in gm.graph.nodes if n.op == "placeholder"]


def split_modules(gm, cut: Cut):
    """``(head, tail)``: head maps the model inputs to the cut tensor; tail maps (cut tensor, side inputs) to the
    outputs."""
    head = subgraph(gm, list(cut.head_inputs), [cut.node])
    tail = subgraph(gm, [cut.node, *cut.side_inputs], model_outputs(gm))
    return head, tail
