"""A transformer whose classes no table knows, written here: found and classified by its ops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hjplug


class Quill(nn.Module):  # multi-head causal self-attention, hand-written
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.dh = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, S, W = x.shape
        q, k, v = self.qkv(x).split(W, dim=-1)  # [B, S, W] each
        q, k, v = (t.view(B, S, self.heads, self.dh).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dh)  # [B, h, S, S]
        causal = torch.ones(S, S, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        mix = torch.softmax(scores, dim=-1) @ v  # [B, h, S, dh]
        return self.out(mix.transpose(1, 2).reshape(B, S, W))


class Inkwell(nn.Module):  # pre-norm block: two skips, a GELU feed-forward
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mix = Quill(width, heads)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(self.n1(x))
        return x + self.ff(self.n2(x))


class Scriptorium(nn.Module):  # token embedding, 3 blocks, log-softmax head at temperature 0.7
    def __init__(self, vocab: int = 50, width: int = 24, heads: int = 3, depth: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Inkwell(width, heads) for _ in range(depth))
        self.head = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return torch.log_softmax(self.head(x) / 0.7, dim=-1)


@pytest.fixture(scope="module")
def model_and_ids() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return Scriptorium().eval(), torch.randint(0, 50, (2, 7))


def test_blocks_are_found_by_their_ops(model_and_ids) -> None:
    model, ids = model_and_ids
    report = hjplug.inspect(model, (ids,))
    assert report.kinds() == {"attention": 3, "residual": 6, "activation": 3, "lse": 1}
    attn = [b for b in report.blocks if b.kind == "attention"]
    assert all(b.exactness == "exact" for b in attn)
    assert all(b.epsilon == pytest.approx(math.sqrt(8)) for b in attn)  # ε = √d_head
    assert {b.exactness for b in report.blocks if b.kind == "activation"} == {"open"}  # GELU
    (head,) = [b for b in report.blocks if b.kind == "lse"]
    assert head.epsilon == pytest.approx(0.7)
    assert {b.exactness for b in report.blocks if b.kind == "residual"} == {"structural"}


def test_conversion_is_exact_and_leaves_the_original(model_and_ids) -> None:
    model, ids = model_and_ids
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ref = model(ids)
        out = hjplug.convert(model, (ids,))(ids)
    scale = max(1.0, float(ref.abs().max()))
    assert float((out - ref).abs().max()) <= 1e-5 * scale
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
