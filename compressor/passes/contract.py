"""The contract every pass keeps (see :mod:`compressor.pipeline`).

A pass is a function of the build's frozen inputs and its append-only results, declared with :func:`build_pass`
naming the result fields it reads and writes.  Calling a :class:`Pass` gives the function a view of the results
that refuses any other field, and checks afterwards that results only grew: list fields kept their items (in
order) and gained new ones, mapping fields kept their keys, set figures kept their values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from compressor.state import BuildInputs, BuildResults, PassFunction


@dataclass(frozen=True)
class Pass:
    name: str
    run: PassFunction
    reads: frozenset[str]
    writes: frozenset[str]

    def __call__(self, inputs: BuildInputs, results: BuildResults) -> None:
        view = _ResultsView(results, self)
        before = _snapshot(results)
        self.run(inputs, cast(BuildResults, view))  # the view stands in for the results
        _check_growth(self, before, _snapshot(results))


def build_pass(reads: Iterable[str] = (), writes: Iterable[str] = ()) -> Callable[[PassFunction], Pass]:
    """Declare a pass: the result fields it ``reads`` and the ones it ``writes`` (which it may also read)."""
    known = set(BuildResults.field_names())

    def declare(function: PassFunction) -> Pass:
        unknown = (set(reads) | set(writes)) - known
        if unknown:
            raise ValueError(f"pass {function.__module__} names unknown result fields {sorted(unknown)}")
        name = function.__module__.rsplit(".", 1)[-1].removesuffix("_pass")
        return Pass(name, function, frozenset(reads), frozenset(writes))

    return declare


class PassContractError(AssertionError):
    """A pass touched result fields it did not declare, or took something away from the results."""


class _ResultsView:
    """The results as one pass may see them: declared fields only."""

    def __init__(self, results: BuildResults, owner: Pass) -> None:
        object.__setattr__(self, "_results", results)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str):
        owner: Pass = object.__getattribute__(self, "_owner")
        if name in BuildResults.field_names() and name not in owner.reads | owner.writes:
            raise PassContractError(f"pass {owner.name} reads results.{name} without declaring it")
        return getattr(object.__getattribute__(self, "_results"), name)

    def __setattr__(self, name: str, value) -> None:
        owner: Pass = object.__getattribute__(self, "_owner")
        if name not in owner.writes:
            raise PassContractError(f"pass {owner.name} writes results.{name} without declaring it")
        setattr(object.__getattribute__(self, "_results"), name, value)


def _snapshot(results: BuildResults) -> dict[str, object]:
    shot: dict[str, object] = {}
    for name in BuildResults.field_names():
        value = getattr(results, name)
        if isinstance(value, list):
            shot[name] = [id(item) for item in value]
        elif isinstance(value, dict):
            shot[name] = {key: id(item) for key, item in value.items()}
        else:
            shot[name] = id(value) if value is not None else None
    return shot


def _check_growth(owner: Pass, before: dict, after: dict) -> None:
    for name, old in before.items():
        new = after[name]
        if name not in owner.writes:
            if new != old:
                raise PassContractError(f"pass {owner.name} changed results.{name}, which it does not declare")
            continue
        if isinstance(old, list) and new[: len(old)] != old:
            raise PassContractError(f"pass {owner.name} removed or replaced items of results.{name}")
        if isinstance(old, dict) and any(new.get(key) != item for key, item in old.items()):
            raise PassContractError(f"pass {owner.name} removed or replaced entries of results.{name}")
        if not isinstance(old, (list, dict)) and old is not None and new != old:
            raise PassContractError(f"pass {owner.name} replaced results.{name}, which was already set")
