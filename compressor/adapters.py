"""Model-specific conventions, registered by name, so generic techniques never test for one architecture.

An :class:`AttentionConvention` tells structured pruning how an attention module keeps its head count and its
query/key/value projections (and which attributes are derived from them); Torch-Pruning then removes whole heads
and the convention updates the module's attributes.  Add a convention for a new architecture family here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from compressor.registry import Registry


@dataclass(frozen=True)
class AttentionConvention:
    """``heads``: the integer attribute holding the head count; ``projections``: the query, key and value
    ``nn.Linear`` children; ``width``: an integer attribute that equals the query projection's output width
    (heads x head size), kept in step after pruning."""

    heads: str
    projections: tuple[str, str, str]
    width: str | None = None

    def matches(self, module) -> bool:
        from torch import nn

        return isinstance(getattr(module, self.heads, None), int) and all(
            isinstance(getattr(module, name, None), nn.Linear) for name in self.projections
        )

    def update(self, module, heads: int) -> None:
        """Record ``heads`` remaining heads on ``module`` after its projections were pruned."""
        setattr(module, self.heads, heads)
        if self.width is not None and isinstance(getattr(module, self.width, None), int):
            setattr(module, self.width, getattr(module, self.projections[0]).out_features)


attention_conventions: Registry[AttentionConvention] = Registry("attention convention")
attention_conventions.register("torch-style")(AttentionConvention("num_heads", ("q", "k", "v")))
attention_conventions.register("llama-style")(AttentionConvention("num_heads", ("q_proj", "k_proj", "v_proj")))
attention_conventions.register("bert-style")(
    AttentionConvention("num_attention_heads", ("query", "key", "value"), width="all_head_size")
)


def attention_modules(model) -> Iterator[tuple[object, AttentionConvention]]:
    """Every submodule of ``model`` that follows a registered attention convention, with that convention."""
    for module in model.modules():
        for name in attention_conventions:
            convention = attention_conventions.get(name)
            if convention.matches(module):
                yield module, convention
                break
