"""Edge cases of the recorded statistics found by the family audit: the two CPU backends of
hjplug.instrument ("stats" and "kernel") agree on deformed / tropical / soft-capped heads, and
fp64 models keep fp64 statistics on the readable eager path."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import TINY

import hjplug
import hjplug.integrations.huggingface as hf

_STATS = ("lse", "entropy", "topk", "gap")


def _record(model, inputs, backend: str, lam: float, head: int = 1):
    with torch.no_grad(), hjplug.instrument.deform(model, lam, layers=[0], heads=[head]), \
            hjplug.instrument(model, stats=_STATS, topk=3, backend=backend) as rec:
        model(**inputs)
    return rec


@pytest.mark.parametrize("name", ["llama", "generic", "t5"])  # GQA / soft-cap + window / bias
def test_tropical_value_is_the_max_score_in_both_backends(name: str) -> None:
    """λ_h = 0: value_i = max_j s_ij / scaling (records.py), the limit of ε·lse as λ → 0 —
    not NaN, and the same in the "stats" backend as in the "kernel" one."""
    model, inputs = TINY[name]()
    valid = inputs["attention_mask"].bool()  # [B, Sq] of the encoder / decoder-only model
    near = _record(model, inputs, "stats", 1e-7)  # ε·lse = max s/scaling + O(ε log k)
    for backend in ("stats", "kernel"):
        rec = _record(model, inputs, backend, 0.0)
        value = rec["layers.0.attn.value"][:, 1].double()  # [B, Sq], the tropical head
        want = near["layers.0.attn.value"][:, 1].double()
        assert torch.isfinite(value[valid]).all(), backend
        torch.testing.assert_close(value[valid], want[valid], atol=1e-5, rtol=1e-5)
        assert not rec["layers.0.attn.nan"][:, 1][valid].any()


@pytest.mark.parametrize("name", ["llama", "generic"])
def test_backends_agree_on_a_deformed_and_a_tropical_head(name: str) -> None:
    model, inputs = TINY[name]()
    valid = inputs["attention_mask"].bool()
    for lam in (0.0, 0.4):
        a, b = (_record(model, inputs, backend, lam) for backend in ("stats", "kernel"))
        for k in ("epsilon", "lse", "value", "entropy", "normalized_entropy", "keys",
                  "topk_weights"):
            x, y = a[f"layers.0.attn.{k}"], b[f"layers.0.attn.{k}"]
            if x.dim() >= 3:  # [B, H, Sq, ...] → valid query rows
                x, y = x.transpose(1, 2)[valid], y.transpose(1, 2)[valid]
            torch.testing.assert_close(x.double(), y.double(), atol=1e-5, rtol=1e-5,
                                       equal_nan=True, msg=f"λ={lam} {k}")


def _fp64_reference(model, inputs) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per block: (π [B, H, Sq, Sk], lse, entropy) in fp64 from the q, k, mask the attention
    function received (soft-cap c·tanh(s/c), GQA keys repeated) — a few independent lines."""
    from hjplug.instrument._tap import tap
    from hjplug.integrations.huggingface.blocks import attention_blocks

    got: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def grab(i: int):
        def fn(call) -> None:
            q, k, mask = call.query, call.key, call.mask  # mask: bool, True = keep
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            s = call.scaling * q @ k.transpose(-1, -2)
            if call.softcap is not None:
                s = call.softcap * torch.tanh(s / call.softcap)
            s = s.masked_fill(~mask, float("-inf"))
            p = torch.softmax(s, -1)
            lse = torch.logsumexp(s, -1)
            ent = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)
            got[i] = (p, lse, ent)
        return fn

    blocks = [m for _, m, _ in attention_blocks(model)]
    with torch.no_grad(), tap({m: grab(i) for i, m in enumerate(blocks)}):
        model(**inputs)
    return got


@pytest.mark.parametrize("backend", ["stats", "kernel"])
def test_fp64_soft_capped_statistics_stay_fp64(backend: str) -> None:
    """Gemma-2 in fp64 (soft-capped: the readable eager path): lse, entropy and the top-k π
    agree with an fp64 evaluation to fp64 precision (the top-k weights were taken from π
    rounded to fp32: errors ~1e-8)."""
    model, inputs = TINY["generic"]("eager")
    model = hf.enable(model.double())
    valid = inputs["attention_mask"].bool()
    ref = _fp64_reference(model, inputs)
    with torch.no_grad(), hjplug.instrument(model, stats=_STATS, topk=3, backend=backend) as rec:
        model(**inputs)
    for i, (p, lse, ent) in ref.items():
        rows = valid[:, None, :].expand_as(lse)
        tw = rec[f"layers.{i}.attn.topk_weights"]
        assert tw.dtype == torch.float64
        torch.testing.assert_close(tw[rows], p.topk(3, -1).values[rows], atol=1e-12, rtol=0)
        torch.testing.assert_close(rec[f"layers.{i}.attn.lse"][rows], lse[rows], atol=1e-12,
                                   rtol=0)
        torch.testing.assert_close(rec[f"layers.{i}.attn.entropy"][rows], ent[rows],
                                   atol=1e-12, rtol=0)
