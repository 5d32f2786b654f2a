"""The two layers of a model spec that torch has no class for. ``to_python`` copies their
source into the code it emits, so these classes must stay self-contained (torch and nn only)."""

import torch
from torch import nn


class MeanPool(nn.Module):
    """Mean over the sequence axis: (batch, sequence, features) → (batch, features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class TokenEmbedding(nn.Module):
    """Token embedding plus a learned embedding of each position."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_len: int):
        super().__init__()
        self.tokens = nn.Embedding(num_embeddings, embedding_dim)
        self.positions = nn.Parameter(torch.randn(max_len, embedding_dim) * 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokens(ids) + self.positions[: ids.shape[1]]
