"""The two CPU attention-statistics backends agree on every tiny family (GQA, RoPE, causal,
padding, T5 position bias): "stats" (SDPA + statistics pass) and "kernel" (record())."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import hjplug

sys.path.insert(0, str(Path(__file__).parents[1] / "integrations" / "huggingface"))
import hf_tiny

STATS = ("entropy", "lse", "topk", "gap", "curvature")


@pytest.mark.parametrize("family", ["llama", "t5", "qwen2", "gpt2"])
def test_stats_and_kernel_backends_agree(family: str) -> None:
    model, inputs = hf_tiny.TINY[family]()
    out = {}
    for backend in ("stats", "kernel"):
        with torch.no_grad(), hjplug.instrument(model, stats=STATS, backend=backend) as rec:
            model(**inputs)
        out[backend] = rec
    a, b = out["stats"], out["kernel"]
    names = [k for k in a if ".attn." in k]
    assert names and set(names) <= set(b.keys())
    for k in names:
        if k.endswith(("topk_indices", "gap", "gap_ratio")):
            continue  # near-ties may order differently; weights are compared instead
        x, y = a[k], b[k]
        if x.is_floating_point():
            torch.testing.assert_close(x.double(), y.double(), atol=1e-5, rtol=1e-5,
                                       equal_nan=True)
        else:
            assert torch.equal(x, y), k


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_statistics_pass_is_blockwise(family: str, monkeypatch) -> None:
    """Small query blocks (CHUNK = 300 scores) give the same statistics as one block."""
    import importlib

    fast = importlib.import_module("hjplug.instrument._fast")
    model, inputs = hf_tiny.TINY[family]()
    with torch.no_grad(), hjplug.instrument(model, stats=STATS, backend="stats") as whole:
        model(**inputs)
    monkeypatch.setattr(fast, "CHUNK", 300)
    with torch.no_grad(), hjplug.instrument(model, stats=STATS, backend="stats") as blocks:
        model(**inputs)
    for k in whole:
        if ".attn." in k and whole[k].is_floating_point():
            torch.testing.assert_close(blocks[k], whole[k], atol=1e-6, rtol=1e-6,
                                       equal_nan=True)


def test_moe_router_readout() -> None:
    """The router of a mixture-of-experts block is an LSE readout over the experts (ε = 1)."""
    model, inputs = hf_tiny.TINY["jamba"]()
    router = model.model.layers[1].feed_forward.router
    seen: list[torch.Tensor] = []
    handle = router.register_forward_hook(lambda m, a, o: seen.append(a[0].detach()))
    try:
        with torch.no_grad(), hjplug.instrument(model, stats=("entropy", "topk"), topk=2) as rec:
            model(**inputs)
    finally:
        handle.remove()
    z = torch.nn.functional.linear(seen[0], router.weight).double()  # [tokens, experts]
    ent = torch.distributions.Categorical(logits=z).entropy()
    torch.testing.assert_close(rec["readout.router0.entropy"].double(), ent, atol=1e-5, rtol=0)
    assert rec.paths["readout.router0"] == "model.layers.1.feed_forward.router"
    assert torch.equal(rec["readout.router0.topk_indices"], z.topk(2, -1).indices)
