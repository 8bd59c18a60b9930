"""Small models for the split tests: a residual CNN and a transformer encoder with an attention-mask input."""

from __future__ import annotations

import torch
from torch import nn


class ResidualNet(nn.Module):
    """Two residual blocks over 8x8 single-channel images; skip connections make most positions non-cuts."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
            for _ in range(2)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(x + block(x))
        return self.head(x)


class TinyTransformer(nn.Module):
    """Two pre-norm encoder layers over [B, T, D] features with a [B, T] float mask (1 = token, 0 = padding)."""

    def __init__(self, dim: int = 16, heads: int = 2, layers: int = 2, classes: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.out = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bias = (1.0 - mask)[:, None, None, :] * -1e4  # [B, 1, 1, T], broadcast over heads and queries
        h = self.proj(x)
        for layer in self.layers:
            h = h + _attend(layer, h, bias)
            h = h + layer.linear2(torch.relu(layer.linear1(layer.norm2(h))))
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.out(pooled)


def _attend(layer: nn.TransformerEncoderLayer, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    attn = layer.self_attn
    b, t, d = h.shape
    heads = attn.num_heads
    qkv = nn.functional.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias).reshape(
        b, t, 3, heads, d // heads
    )
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / (d // heads) ** 0.5 + bias
    mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return attn.out_proj(mixed)


def transformer_sample(
    batch: int = 1, tokens: int = 6, dim: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tokens, dim, generator=generator)
    mask = torch.ones(batch, tokens)
    mask[:, tokens - 2 :] = 0.0
    return x, mask
