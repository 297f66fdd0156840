"""One ε per head on a replayed attention chain (BLOOM-style: ALiBi fused by baddbmm into 3-D
[B·H, S, S] scores, viewed as [B, H, S, S] for the mask, softmax, viewed back, bmm with v). The
chain is replayed with its softmax input scaled by ε₀/ε_h on the heads' dim (bias included, a
temperature; masked keys stay removed), statically and with dynamic=True at another batch size
and length, equal to an independent fp64 evaluation; before, the step refused per-head ε."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hjplug

E, H = 16, 2
D = E // H
LAM = 0.4


class AlibiBmm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(E, 3 * E)
        self.register_buffer("slopes", torch.tensor([0.5, 0.25]))  # [H]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, -1)  # [B, S, E] each
        q, k, v = (t.view(b, s, H, D).transpose(1, 2).reshape(b * H, s, D) for t in (q, k, v))
        pos = torch.arange(s, device=x.device, dtype=x.dtype)
        alibi = (self.slopes.view(H, 1, 1) * pos.view(1, 1, s)).repeat(b, 1, 1)  # [B·H, 1, S]
        z = torch.baddbmm(alibi, q, k.transpose(1, 2), alpha=1 / math.sqrt(D))  # [B·H, S, S]
        z = z.view(b, H, s, s)
        future = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)  # [S, S]
        z = z.masked_fill(future, torch.finfo(z.dtype).min)
        w = torch.softmax(z, -1).view(b * H, s, s)
        return torch.bmm(w, v).view(b, H, s, D).transpose(1, 2).reshape(b, s, E)  # [B, S, E]


@torch.no_grad()
def _reference(m: AlibiBmm, x: torch.Tensor, lam: list[float]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64, the logits of head h (ALiBi included) divided by lam[h]: (output, entropy)."""
    b, s, _ = x.shape
    q, k, v = (x.double() @ m.qkv.weight.double().T + m.qkv.bias.double()).chunk(3, -1)
    q, k, v = (t.view(b, s, H, D).transpose(1, 2) for t in (q, k, v))  # [B, H, S, d]
    alibi = m.slopes.double().view(1, H, 1, 1) * torch.arange(s, dtype=torch.float64)
    z = q @ k.transpose(-1, -2) / math.sqrt(D) + alibi  # [B, H, S, S]
    z = z / torch.tensor(lam, dtype=torch.float64).view(1, H, 1, 1)
    z = z.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
    p = torch.softmax(z, -1)
    ent = -(p * torch.log_softmax(z, -1).clamp_min(-1e4)).sum(-1)  # [B, H, S]
    return (p @ v).transpose(1, 2).reshape(b, s, E), ent


@pytest.mark.parametrize("dynamic", [False, True])
def test_replayed_chain_takes_one_epsilon_per_head(dynamic: bool) -> None:
    torch.manual_seed(0)
    m = AlibiBmm().eval()
    with torch.no_grad():
        m.qkv.weight.mul_(3.0)  # peaked heads: λ visibly matters
    hj = hjplug.convert(m, (torch.randn(2, 5, E),), dynamic=dynamic)
    (step,) = [s for s in hj.steps.values() if s.spec.kind == "attention"]
    assert step.deform_core is not None and step.spec.hamiltonian.params["heads_per_batch"] == H
    x = torch.randn(3, 7, E) if dynamic else torch.randn(2, 5, E)
    ref, ent = _reference(m, x, [1.0, LAM])
    eps0 = float(step.identified_epsilon)
    with torch.no_grad(), hjplug.deform(hj, LAM, heads=1), \
            hjplug.instrument(hj, stats=("entropy",)) as rec:
        assert step.epsilon == (eps0, LAM * eps0)
        out = hj(x)
    assert (out.double() - ref).abs().max() < 1e-5
    got = rec["layers.0.attn.entropy"]
    assert got.shape == (x.shape[0], H, x.shape[1])
    assert (got.double() - ent).abs().max() < 1e-5
    assert step.epsilon == step.identified_epsilon
    with torch.no_grad():  # at ε₀ again: the original ops
        assert torch.equal(hj(x), m(x))


def test_bloom_dynamic_per_head_at_another_batch_size_and_length() -> None:
    """Tiny BLOOM (eager, ALiBi by baddbmm), dynamic=True, run at batch 3 × 11 tokens (captured
    at 2 × 8): outputs equal the model's; statistics [B, H, Sq]; with heads 1 and 3 deformed,
    layer 0's entropies equal the block-deformed ones on those heads and the undeformed ones
    on the others."""
    import hjzoo

    model, inputs = hjzoo.bloom()
    before = hjzoo.checksum(model)
    hj = hjplug.convert(model, inputs, dynamic=True)
    ids = torch.randint(0, hjzoo.VOCAB, (3, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[0, -4:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        assert hjzoo.max_rel_error(hjzoo.call(model, x, **hj.injected), hjzoo.call(hj, x)) <= 1e-6

    def entropy(scale: float | None = None, heads: list[int] | None = None) -> torch.Tensor:
        with torch.no_grad(), hjplug.instrument(hj, stats=("entropy",)) as rec:
            if scale is None:
                hjzoo.call(hj, x)
            else:
                with hjplug.deform(hj, scale, heads=heads):
                    hjzoo.call(hj, x)
        return rec["layers.0.attn.entropy"].nan_to_num()  # [B, H, Sq]

    base, block, some = entropy(), entropy(0.5), entropy(0.5, [1, 3])
    assert base.shape == (3, 4, 11)
    assert (block - base).abs().max() > 0.1  # the deformation matters
    assert (some[:, [1, 3]] - block[:, [1, 3]]).abs().max() < 1e-5
    assert (some[:, [0, 2]] - base[:, [0, 2]]).abs().max() < 1e-5
    assert hjzoo.checksum(model) == before
