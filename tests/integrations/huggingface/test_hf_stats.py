"""The statistics hook point: per-head lse, entropy and H/log k agree with independent
computations (eager attention weights; scores rebuilt from the module's own projections)."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import TINY

import hjplug.integrations.huggingface as hf
from hjplug.errors import InvalidArgumentError
from hjplug.integrations.huggingface import AttentionStats


@pytest.mark.parametrize("name", ["llama", "mistral"])
def test_entropy_matches_eager_attention_weights(name: str) -> None:
    eager, inputs = TINY[name]("eager")
    model = hf.enable(TINY[name]("sdpa")[0])
    with torch.no_grad():
        probs = eager(**inputs, output_attentions=True).attentions  # per layer [B, H, Sq, Sk]
        seen: list[AttentionStats] = []
        with hf.record(model, seen.append):
            model(**inputs)
    valid = inputs["attention_mask"].bool()  # [B, Sq]
    assert len(seen) == len(probs)
    for st, p in zip(seen, probs, strict=True):
        p = p.double()
        h = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)  # [B, H, Sq]
        k = (p > 0).sum(-1)
        rows = valid.unsqueeze(1).expand_as(h)
        assert torch.allclose(st.entropy.double()[rows], h[rows], atol=1e-5)
        assert torch.equal(st.keys[rows], k[rows])
        norm = torch.where(k > 1, h / k.clamp_min(2).log(), torch.nan)
        assert torch.allclose(st.normalized_entropy.double()[rows], norm[rows], atol=1e-5,
                              equal_nan=True)
        assert torch.isnan(st.normalized_entropy[k == 1]).all()  # k_i = 1: undefined, skipped


def test_lse_matches_scores_from_projections() -> None:
    """BERT: s = scaling·(W_q x)(W_k x)ᵀ per head rebuilt from the module's Linear layers (fp64)."""
    ref, inputs = TINY["bert"]("sdpa")
    model = hf.enable(ref)
    hidden: dict[int, torch.Tensor] = {}
    mods = [m for m in model.modules() if hasattr(m, "_hjplug")]
    hooks = [m.register_forward_pre_hook(
        lambda mod, args, kw, i=i: hidden.__setitem__(i, (args or (kw["hidden_states"],))[0]),
        with_kwargs=True) for i, m in enumerate(mods)]
    seen: list[AttentionStats] = []
    with torch.no_grad(), hf.record(model, seen.append):
        model(**inputs)
    for h in hooks:
        h.remove()
    keep = inputs["attention_mask"].bool()  # [B, Sk] (keys; right padding)
    for i, (mod, st) in enumerate(zip(mods, seen, strict=True)):
        x = hidden[i].double()
        B, S, _ = x.shape
        H, d = 4, 8
        q = torch.nn.functional.linear(x, mod.query.weight.double(), mod.query.bias.double())
        k = torch.nn.functional.linear(x, mod.key.weight.double(), mod.key.bias.double())
        q, k = (t.view(B, S, H, d).transpose(1, 2) for t in (q, k))
        s = mod.scaling * q @ k.transpose(-1, -2)  # [B, H, Sq, Sk]
        s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
        lse = torch.logsumexp(s, -1)
        p = torch.softmax(s, -1)
        ent = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
        assert torch.allclose(st.lse.double(), lse, atol=1e-5)
        assert torch.allclose(st.value.double(), lse / mod.scaling, atol=1e-5)  # ε·lse
        assert torch.allclose(st.entropy.double(), ent, atol=1e-5)
        assert torch.all(st.keys == keep.sum(-1)[:, None, None])
        eps = torch.full((H,), 1 / mod.scaling, dtype=torch.float64)
        assert torch.allclose(st.epsilon.double(), eps)


@pytest.mark.parametrize("lam", [1.0, 0.0])
def test_topk_weights_match_eager(lam: float) -> None:
    eager, inputs = TINY["llama"]("eager")
    model = hf.enable(TINY["llama"]("sdpa")[0])
    with torch.no_grad():
        probs = eager(**inputs, output_attentions=True).attentions
        seen: list[AttentionStats] = []
        with hf.deform(model, lam), hf.record(model, seen.append, topk=3):
            model(**inputs)
    valid = inputs["attention_mask"].bool()
    for st, p in zip(seen, probs, strict=True):
        assert st.topk_weights is not None and st.topk_indices is not None
        rows = valid.unsqueeze(1).expand(p.shape[:3])
        w = st.topk_weights[rows]  # [rows, 3]
        assert torch.all(w[:, :-1] >= w[:, 1:])  # descending
        if lam == 1.0:
            want = p.topk(3, dim=-1).values[rows]
            assert torch.allclose(w, want, atol=1e-5)
            got_idx = st.topk_indices[rows][:, 0]
            assert torch.equal(got_idx, p.argmax(-1)[rows])
        else:  # hard-max: one weight 1 at the argmax, the rest 0
            assert torch.all(w[:, 0] == 1) and torch.all(w[:, 1:] == 0)
            assert torch.all(st.topk_indices[rows][:, 1:] == -1)
    with pytest.raises(InvalidArgumentError, match="topk"), hf.record(model, print, topk=-1):
        pass
