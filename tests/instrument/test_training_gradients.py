"""Training through hjplug: parameter gradients of a loss on the model output are the unmodified
model's, with statistics recorded (the HF integration's kernel path and converted FX models,
whose attention then runs `hjplug.kernels.hj_attention` and its fused backward) and without.

In float64: a float32 comparison is not a fair test on these tiny random models. A 1e-7 change of
a forward value (any reordering of a sum) moves T5's parameter gradients by ~6e-3 through a ReLU
input sitting at ~1e-7 from its kink; fp64 makes the comparison exact to ~1e-15."""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

import pytest
import torch

import hjplug

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
import hjzoo

MODELS = ["gpt2", "bert", "llama", "t5", "bloom", "falcon"]
HF_KERNEL = {"gpt2", "bert", "llama", "t5"}  # models on transformers' AttentionInterface
FX_REPLAYED = {"bloom"}  # ALiBi fused in baddbmm: the step replays the chain (no hj_attention)


def _out(o):
    if isinstance(o, torch.Tensor):
        return o
    if isinstance(o, tuple | list):
        return o[0]
    return next(v for v in o.values() if isinstance(v, torch.Tensor))


def _grads(model, inputs, prefix: str = ""):
    o = _out(hjzoo.call(model, inputs))
    w = torch.linspace(-1.0, 1.0, o.shape[-1], dtype=o.dtype)
    params = dict(model.named_parameters())
    g = torch.autograd.grad((o * w).sum(), list(params.values()), allow_unused=True)
    return {n.removeprefix(prefix): t for n, t in zip(params, g, strict=True)}


def _rel(got: dict, want: dict) -> float:
    common = [n for n in want if want[n] is not None]
    assert common and all(got.get(n) is not None for n in common), "gradient missing"
    num = sum(float((got[n] - want[n]).norm()) ** 2 for n in common) ** 0.5
    return num / sum(float(want[n].norm()) ** 2 for n in common) ** 0.5


@pytest.fixture
def fused_calls(monkeypatch) -> list[int]:
    """Counts the fused attention backward's calls (so the tests know it ran)."""
    from hjplug.kernels import _backward, ops

    calls: list[int] = []
    real = _backward.attention_grads

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "attention_grads", counted)
    return calls


@pytest.mark.parametrize("name", MODELS)
def test_gradients_through_instrumented_models(name: str, fused_calls: list[int]) -> None:
    warnings.simplefilter("ignore", UserWarning)
    model, inputs = hjzoo.ZOO_HF[name]()
    model = model.double()
    want = _grads(model, inputs)
    conv = hjplug.convert(model, inputs)
    assert _rel(_grads(conv, inputs, "graph_module."), want) < 1e-12  # SDPA / plain steps
    assert not fused_calls
    with hjplug.instrument(conv, stats=("entropy", "lse"), readouts=False) as rec:
        got = _grads(conv, inputs, "graph_module.")
    assert rec.keys(), "no statistics recorded"
    assert bool(fused_calls) == (name not in FX_REPLAYED), "fused backward ran / did not run"
    assert _rel(got, want) < 1e-12
    if name in HF_KERNEL:
        hf = copy.deepcopy(model)
        fused_calls.clear()
        with hjplug.instrument(hf, stats=("entropy",), readouts=False, backend="kernel") as rec:
            got = _grads(hf, inputs)
        assert rec.keys() and fused_calls
        assert _rel(got, want) < 1e-12
