"""Helpers for the API tests (kept apart from tests/passes so each folder imports alone)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def checksum(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        flat = t.detach().contiguous().view(-1)
        h.update(name.encode() + str(t.dtype).encode())
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()
