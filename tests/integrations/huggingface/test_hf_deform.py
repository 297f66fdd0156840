"""Per-head ε deformation: ε_h → λ·ε_h; λ → 0 is hard-max; H(π) non-decreasing in λ."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hf_tiny import TINY, rel_err

import hjplug.integrations.huggingface as hf
from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.integrations.huggingface.attention import hjplug_attention_forward
from hjplug.integrations.huggingface.records import AttentionStats, ModuleState
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec


def _logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def test_deformation_equals_rescaled_original() -> None:
    """Independent reference: the unmodified sdpa model with each block's scaling divided by λ."""
    ref, inputs = TINY["llama"]("sdpa")
    model = hf.enable(ref)
    valid = inputs["attention_mask"].bool()
    for lam in (0.25, 3.0):
        scaled = copy.deepcopy(ref)
        for layer in scaled.model.layers:
            layer.self_attn.scaling /= lam
        with hf.deform(model, lam):
            got = _logits(model, inputs)
        assert rel_err(got, _logits(scaled, inputs), valid) <= 1e-5


def test_context_restores_and_persistent_setting_stays() -> None:
    ref, inputs = TINY["qwen3"]("sdpa")
    model = hf.enable(ref)
    base = _logits(model, inputs)
    with hf.deform(model, 0.3, layers=[0]):
        inside = _logits(model, inputs)
        with hf.deform(model, 0.0, layers=[1], heads=[2]):
            assert not torch.equal(_logits(model, inputs), inside)
        assert torch.equal(_logits(model, inputs), inside)
    assert not torch.equal(inside, base)
    assert torch.equal(_logits(model, inputs), base)  # exact restore: fast path again
    hf.deform(model, 2.0, heads=[0, 1])  # persistent
    assert [r.epsilon[0] / r.epsilon[2] for r in hf.specs(model)] == pytest.approx([2.0, 2.0])
    assert not torch.equal(_logits(model, inputs), base)
    hf.deform(model, 1.0)
    assert torch.equal(_logits(model, inputs), base)
    assert all(m._hjplug.idle for m in model.modules() if hasattr(m, "_hjplug"))


def test_layers_and_heads_selection_in_records_and_statistics() -> None:
    ref, inputs = TINY["llama"]("sdpa")
    model = hf.enable(ref)
    eps0 = hf.specs(model)[1].epsilon
    with hf.deform(model, [0.5, 4.0], layers=["model.layers.1.self_attn"], heads=[0, 3]):
        recs = hf.specs(model)
        assert recs[0].epsilon == hf.specs(hf.enable(ref))[0].epsilon
        assert recs[1].epsilon == pytest.approx([0.5 * eps0[0], eps0[1], eps0[2], 4 * eps0[3]])
        seen: list[AttentionStats] = []
        with hf.record(model, seen.append):
            _logits(model, inputs)
        assert seen[1].epsilon.tolist() == pytest.approx(list(recs[1].epsilon))
    assert hf.specs(model)[1].epsilon == eps0


def _one_head_state(scale: tuple[float, ...] | None) -> ModuleState:
    spec = HJSpec("x", BlockKind.ATTENTION, Hamiltonian("h"), (1.0,) * 3, None, Exactness.EXACT)
    return ModuleState(path="x", index=0, heads=3, spec=spec, scale=scale, keep=True)


def test_scale_zero_is_one_hot_attention(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, ..., :2] = False  # two removed keys in batch 0
    mod = torch.nn.Module()
    mod.is_causal = False
    mod._hjplug = _one_head_state((0.0, 0.0, 0.0))
    out, w = hjplug_attention_forward(mod, q, k, v, mask, scaling=0.35)
    s = (0.35 * q @ k.transpose(-1, -2)).masked_fill(~mask, float("-inf"))
    j = s.argmax(-1)  # [B, H, Sq]
    want = torch.gather(v, 2, j.unsqueeze(-1).expand(-1, -1, -1, 8))  # v at the argmax key
    assert torch.equal(w, torch.nn.functional.one_hot(j, 5).float())
    assert torch.allclose(out.transpose(1, 2), want, atol=1e-6)
    st = mod._hjplug.last
    assert st is not None and torch.all(st.entropy == 0) and torch.all(st.epsilon == 0)
    # HJ value → max_j s_ij / scaling (atol: fp32 rounding of q·k sums of size ~|q||k|)
    assert torch.allclose(st.value, s.amax(-1) / 0.35, atol=1e-5)
    top2 = s.topk(2, dim=-1).values
    gap = float((top2[..., 0] - top2[..., 1]).min())  # smallest top-2 gap Δ
    assert gap > 0
    lam = gap / 40  # π of the runner-up ≤ e^{−Δ/λ} = e^{−40}: the kernel path reaches the limit
    mod._hjplug = _one_head_state((lam,) * 3)
    near, _ = hjplug_attention_forward(mod, q, k, v, mask, scaling=0.35)
    assert mod._hjplug.last is not None and mod._hjplug.last.backend == "kernel"
    assert torch.allclose(near, out, atol=1e-5)


def test_scale_zero_in_a_model_gives_zero_entropy() -> None:
    ref, inputs = TINY["mistral"]("sdpa")
    model = hf.enable(ref)
    seen: list[AttentionStats] = []
    with hf.deform(model, 0.0), hf.record(model, seen.append):
        _logits(model, inputs)
    valid = inputs["attention_mask"].bool()  # [B, Sq]
    for st in seen:
        assert st.backend == "eager"
        assert torch.all(st.entropy.permute(0, 2, 1)[valid] == 0)


@pytest.mark.parametrize("name", ["llama", "bert", "t5"])
def test_entropy_is_non_decreasing_in_scale(name: str) -> None:
    """∂H/∂λ = Var_π(s)/λ³ ≥ 0 for every head and query of the deformed block (one block at a
    time, so its inputs stay fixed along the sweep)."""
    ref, inputs = TINY[name]("sdpa")
    model = hf.enable(ref)
    scales = [0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 8.0]
    for block in range(len(hf.specs(model))):
        ent, keys = [], None
        for lam in scales:
            seen: list[AttentionStats] = []
            with hf.deform(model, lam, layers=[block]), hf.record(model, seen.append), \
                    torch.no_grad():
                model(**inputs)
            mine = [st for st in seen if st.index == block]
            assert len(mine) == 1
            ent.append(mine[0].entropy)
            keys = mine[0].keys
        e = torch.stack(ent)  # [scale, B, H, Sq]
        assert keys is not None
        assert torch.isnan(e[:, keys == 0]).all()  # no visible key: entropy undefined
        e = e.masked_fill(keys == 0, 0.0)
        assert torch.all(e[1:] - e[:-1] >= -1e-5), f"block {block}: entropy decreased"
        assert torch.all(e[-1] <= keys.clamp_min(1).log() + 1e-5)  # H ≤ log k
        assert (e[-1] - e[0]).max() > 0.5  # the sweep moves: particle → wave


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, [0.5, 0.5, 0.5]])
def test_bad_scale(bad: object) -> None:
    model = hf.enable(TINY["llama"]("sdpa")[0])
    with pytest.raises(InvalidArgumentError, match="scale"):
        hf.deform(model, bad, heads=[0, 1])  # type: ignore[arg-type]
    assert all(m._hjplug.scale is None for m in model.modules() if hasattr(m, "_hjplug"))


def test_bad_layers_and_heads() -> None:
    model = hf.enable(TINY["llama"]("sdpa")[0])
    with pytest.raises(InvalidArgumentError, match=r"layers.*\[0, 2\)"):
        hf.deform(model, 0.5, layers=[2])
    with pytest.raises(InvalidArgumentError, match="layers"):
        hf.deform(model, 0.5, layers=["model.layers.9.self_attn"])
    with pytest.raises(InvalidArgumentError, match=r"heads.*\[0, 4\)"):
        hf.deform(model, 0.5, layers=[0], heads=[4])
    assert all(m._hjplug.scale is None for m in model.modules() if hasattr(m, "_hjplug"))
    with pytest.raises(HJPlugError, match="expected an hjplug-enabled model"):
        hf.deform(TINY["llama"]("sdpa")[0], 0.5)
