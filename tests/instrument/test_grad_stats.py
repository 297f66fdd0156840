"""instrument(grad=True): the recorded attention statistics stay on the autograd graph, so a loss
may use them; gradients (fused backward of hj_attention) against autograd through the eager
attention weights' entropy / log-partition, in float64."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

import hjplug
from hjplug.errors import InvalidArgumentError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
import hjzoo


def _models():
    warnings.simplefilter("ignore", UserWarning)
    model, inputs = hjzoo.ZOO_HF["gpt2"]()
    eager, _ = hjzoo.ZOO_HF["gpt2"]("eager")
    eager.load_state_dict(model.state_dict())
    return model.double(), eager.double(), inputs


def _eager_loss(eager, inputs) -> torch.Tensor:
    """Σ_layers mean H(π) from the eager weights (the independent evaluation)."""
    out = eager(**inputs, output_attentions=True, use_cache=False)
    loss = torch.zeros((), dtype=torch.float64)
    for w in out.attentions:  # [B, H, Sq, Sk]
        ent = -(w * torch.where(w > 0, w, 1.0).log()).sum(-1)  # 0·log 0 = 0, no NaN grad
        loss = loss + ent.mean()
    return loss


def _grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(loss, params, allow_unused=True)


def _rel(a, b) -> float:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if y is not None]
    assert pairs and all(x is not None for x, _ in pairs)
    num = sum(float((x - y).norm()) ** 2 for x, y in pairs) ** 0.5
    return num / sum(float(y.norm()) ** 2 for _, y in pairs) ** 0.5


def _rec_loss(rec) -> torch.Tensor:
    names = [k for k in rec if k.endswith(".attn.entropy")]
    assert names
    return sum(rec[n].mean() for n in names)


def test_hf_entropy_gradients_match_eager() -> None:
    model, eager, inputs = _models()
    want = _grads(eager, _eager_loss(eager, inputs))
    with hjplug.instrument(model, stats=("entropy",), readouts=False, grad=True) as rec:
        model(**inputs, use_cache=False)
    assert any("kernel" in n for n in rec.notes)  # grad=True takes the kernel backend
    assert _rel(_grads(model, _rec_loss(rec)), want) < 1e-10


def test_fx_entropy_gradients_match_eager() -> None:
    model, eager, inputs = _models()
    want = _grads(eager, _eager_loss(eager, inputs))
    conv = hjplug.convert(model, inputs)
    with hjplug.instrument(conv, stats=("entropy",), readouts=False, grad=True) as rec:
        hjzoo.call(conv, inputs)
    got = dict(zip([n.removeprefix("graph_module.") for n, _ in conv.named_parameters()],
                   _grads(conv, _rec_loss(rec)), strict=True))
    names = [n for n, p in eager.named_parameters() if p.requires_grad]
    assert _rel([got.get(n) for n in names], want) < 1e-10


def test_default_records_detached_and_stats_backend_refused() -> None:
    model, _, inputs = _models()
    with hjplug.instrument(model, stats=("entropy",), readouts=False, backend="kernel") as rec:
        model(**inputs, use_cache=False)
    assert not rec["layers.0.attn.entropy"].requires_grad
    with pytest.raises(InvalidArgumentError, match="grad=True"), \
            hjplug.instrument(model, stats=("entropy",), backend="stats", grad=True):
        pass
    rec.summary()  # readers work on graph-attached data too (see below)
    with hjplug.instrument(model, stats=("entropy", "topk"), readouts=False, grad=True) as rec:
        model(**inputs, use_cache=False)
    assert rec["layers.1.attn.entropy"].requires_grad
    assert rec["layers.1.attn.topk_weights"].requires_grad
    assert rec.summary().to_records() and len(rec.to_dataframe(per="row"))
