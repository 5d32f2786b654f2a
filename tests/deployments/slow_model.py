"""A model (an entry point, as a registrant may name one) whose forward pass hangs on a marked
row, after leaving a file in its working directory: a request provably in flight."""

from __future__ import annotations

import time

import torch
from torch import nn

MARK = 999.0


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] == MARK).any()):
            open("in-forward", "w").close()
            time.sleep(120)
        return self.linear(x)


def build(input_dim=None, outputs=None) -> Slow:
    return Slow()
