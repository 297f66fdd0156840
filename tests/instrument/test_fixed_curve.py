"""The sweep's fixed-input curves (hjplug/instrument/fixed_curve.py): every λ from one forward
and one `hjplug.kernels.entropy_sweep` call per block, equal to an fp64 evaluation from eager
attention weights, the same on the HF and FX paths, the q·kᵀ form equal to the logits form,
and a decreasing curve reported as a monotonicity violation."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
import transformers as tf
from instr_models import VOCAB, bert, text_inputs

import hjplug
import hjplug.kernels as kernels
from hjplug.cli import main
from hjplug.errors import HJPlugError
from hjplug.instrument import fixed_curve as fc
from hjplug.instrument.sweep import EntropyMonotonicityWarning
from hjplug.integrations.huggingface.attention_math import attention_logits

LAM = [0.3, 0.7, 1.0, 2.0, 5.0]


def _fp64_curves(model, inputs, lam: list[float]) -> torch.Tensor:
    """Mean H/log k per (λ, layer, head) from eager output_attentions π at λ = 1:
    softmax(z₀/λ) = softmax(log π/λ) (a per-row shift of z₀ does not change π)."""
    eager = type(model)(model.config).eval()
    eager.load_state_dict(model.state_dict())
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        att = eager(**inputs, output_attentions=True).attentions  # L × [B, H, Sq, Sk]
    L, H = len(att), att[0].shape[1]
    real = inputs["attention_mask"].bool()[:, None, :]  # [B, 1, Sq]: padded queries left out
    out = torch.empty(len(lam), L, H, dtype=torch.float64)
    for i, p in enumerate(att):
        p = p.double()
        keys = (p > 0).sum(-1)  # [B, H, Sq]
        logp = torch.where(p > 0, p.log(), torch.full_like(p, -math.inf))
        for s, v in enumerate(lam):
            q = torch.softmax(logp / v, -1)
            ent = -(torch.where(q > 0, q * q.log(), torch.zeros_like(q))).sum(-1)
            ok = (keys > 1) & real
            nrm = torch.where(ok, ent / keys.clamp_min(2).double().log(), torch.zeros_like(ent))
            for h in range(H):
                out[s, i, h] = nrm[:, h][ok[:, h]].mean()
    return out


@pytest.mark.parametrize("path", ["hf", "fx"])
def test_fixed_curves_match_fp64_from_eager_weights(path: str, monkeypatch) -> None:
    model, inputs = bert()  # padded batch: the logits form
    target = model if path == "hf" else hjplug.convert(model, inputs)
    calls = {"n": 0}
    real = kernels.entropy_sweep

    def counting(*a, **kw):
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(kernels, "entropy_sweep", counting)
    res = hjplug.sweep(target, inputs, LAM, folds=False)
    assert calls["n"] == 2  # one pass per block for all five λ, not one per λ
    assert res.ok and res.fixed_normalized_entropy is not None
    want = _fp64_curves(model, inputs, LAM)
    torch.testing.assert_close(res.fixed_normalized_entropy, want, atol=2e-5, rtol=0)
    torch.testing.assert_close(res.fixed_normalized_entropy[:, 0], res.normalized_entropy[:, 0],
                               atol=2e-5, rtol=0)  # block 0: deformed inputs = fixed inputs
    assert bool((res.fixed_normalized_entropy.diff(dim=0) > 0).all())  # ∂H/∂ε ≥ 0


def test_qk_form_equals_logits_form_and_is_used_without_a_mask(monkeypatch) -> None:
    """A causal decoder without padding takes the q·kᵀ form (no [Sq, Sk] logits)."""
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=37, vocab_size=VOCAB,
                         max_position_embeddings=64)
    model = tf.LlamaModel(cfg).eval()
    inputs = {"input_ids": text_inputs()["input_ids"]}
    used = {"qk": 0, "logits": 0}
    real_qk, real_logits = fc.entropy_of_qk, fc.entropy_of_logits

    def qk(*a, **kw):
        used["qk"] += 1
        return real_qk(*a, **kw)

    def logits(*a, **kw):
        used["logits"] += 1
        return real_logits(*a, **kw)

    import hjplug.instrument._sweep_hf as drv

    monkeypatch.setattr(drv, "entropy_of_qk", qk)
    monkeypatch.setattr(drv, "entropy_of_logits", logits)
    a = hjplug.sweep(model, inputs, LAM, folds=False)
    assert used == {"qk": 2, "logits": 0}
    def via_logits(q, k, scale, causal, lam):  # the same call, z₀ materialised
        return real_logits(attention_logits(q, k, None, scale, causal, None), lam)

    monkeypatch.setattr(drv, "entropy_of_qk", via_logits)
    b = hjplug.sweep(model, inputs, LAM, folds=False)
    assert a.ok and b.ok
    torch.testing.assert_close(a.fixed_normalized_entropy, b.fixed_normalized_entropy,
                               atol=1e-5, rtol=0)
    assert torch.isfinite(a.fixed_normalized_entropy).all()


def test_per_head_curves_only_for_the_chosen_heads() -> None:
    model, inputs = bert()
    hj = hjplug.convert(model, inputs)
    res = hjplug.sweep(hj, inputs, LAM, layers=[1], heads=[2], folds=False)
    f = res.fixed_normalized_entropy
    assert f is not None and torch.isfinite(f[:, 1, 2]).all()
    f_other = f.clone()
    f_other[:, 1, 2] = math.nan
    assert torch.isnan(f_other).all()
    hf = hjplug.sweep(model, inputs, LAM, layers=[1], heads=[2], folds=False)
    torch.testing.assert_close(f, hf.fixed_normalized_entropy, atol=2e-5, rtol=0,
                               equal_nan=True)


def test_a_decreasing_curve_is_a_reported_violation(monkeypatch) -> None:
    model, inputs = bert()

    def falling(z, eps):  # a broken kernel: entropy falls with ε
        e = torch.tensor(eps, dtype=torch.float32)
        keys = torch.isfinite(z).sum(-1, keepdim=True).clamp_min(2).float()
        return keys.log() / (1 + e)  # [B, H, Sq, S], decreasing in ε

    monkeypatch.setattr(kernels, "entropy_sweep", falling)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = hjplug.sweep(model, inputs, LAM, folds=False)
    assert not res.ok and res.violations
    assert any(issubclass(x.category, EntropyMonotonicityWarning) for x in w)
    v = res.violations[0]
    assert v.scale_hi > v.scale_lo and v.entropy_hi < v.entropy_lo
    with pytest.raises(HJPlugError, match="entropy decreased"):
        hjplug.sweep(model, inputs, LAM, folds=False, strict=True)
    clean = hjplug.sweep(model, inputs, LAM, folds=False, fixed_inputs=False)
    assert clean.ok and clean.fixed_normalized_entropy is None


def test_dataframe_plot_and_cli(tmp_path, capsys) -> None:
    pytest.importorskip("pandas")
    model, inputs = bert()
    res = hjplug.sweep(model, inputs, LAM, folds=False)
    df = res.to_dataframe()
    assert {"fixed_entropy", "fixed_normalized_entropy"} <= set(df.columns)
    png = res.plot(str(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").stat().st_size > 1000 and png.endswith("sweep.png")
    rc = main(["sweep", "--scales", "0.5,1,2", "--no-folds", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(data["fixed_normalized_entropy"]) == 3
    rc = main(["sweep", "--scales", "0.5,1,2", "--no-folds", "--no-fixed", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["fixed_normalized_entropy"] is None
