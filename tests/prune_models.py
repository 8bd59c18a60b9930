"""Tiny models for the pruning tests: a CNN with residual connections and a small transformer with attention heads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CLASSES = 4


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResidualCNN(nn.Module):
    """Stem, two residual blocks (the adds couple their channels), pooling and a linear head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(ResidualBlock(width), ResidualBlock(width))
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class Attention(nn.Module):
    """Multi-head self-attention with q/k/v projections and a ``num_heads`` attribute (Hugging Face's layout)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
        attended = torch.softmax(q @ k.transpose(-1, -2) / self.head_dim**0.5, dim=-1) @ v
        return self.out(attended.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention, self.norm1 = Attention(dim, num_heads), nn.LayerNorm(dim)
        self.mlp, self.norm2 = (
            nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)),
            nn.LayerNorm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.mlp(x))


class TinyTransformer(nn.Module):
    """Token features [N, T, F] -> two encoder layers (4 heads each) -> mean pool -> class logits."""

    def __init__(self, features: int = 8, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(features, dim)
        self.layers = nn.Sequential(EncoderLayer(dim, num_heads), EncoderLayer(dim, num_heads))
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.embed(x)).mean(1))


def labelled_data(shape: tuple[int, ...], count: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs with labels from a fixed random linear rule (learnable, so fine-tuning has signal)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, *shape)).astype(np.float32)
    rule = rng.standard_normal((int(np.prod(shape)), CLASSES))
    return x, (x.reshape(count, -1) @ rule).argmax(1).astype(np.int64)


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 5) -> nn.Module:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xs)).split(32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            optimizer.step()
    return model.eval()
