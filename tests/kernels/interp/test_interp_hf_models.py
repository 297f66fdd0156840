"""Tiny Hugging Face BERT and GPT-2 (built from configs in code, no hub download) under
hjplug.instrument(backend="kernel") with HJPLUG_KERNEL=triton: the interpreted Triton forward
runs every attention call, and outputs and statistics equal the HJPLUG_KERNEL=reference run
to ≤ 1e-5 (and the model output equals the stock transformers run without hjplug).

Run by tests/kernels/test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "instrument"))

import instr_models  # noqa: E402

import hjplug  # noqa: E402
from hjplug.kernels import registry  # noqa: E402

TOL = dict(rtol=0.0, atol=1e-5)
N_LAYERS = 2  # both instr_models builders have two attention layers


def _run(model, inputs, mode, monkeypatch, calls):
    monkeypatch.setenv("HJPLUG_KERNEL", mode)
    registry.reset_warnings()
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", registry.KernelFallbackWarning)  # no silent fallback
        with torch.no_grad(), hjplug.instrument(model, stats=("entropy", "lse"),
                                                backend="kernel") as rec:
            out = model(**inputs)[0]
    return out, rec, list(calls)


@pytest.mark.parametrize("build", ["bert", "gpt2"])
def test_hf_model_triton_forward_matches_reference(monkeypatch, build):
    import hjplug.kernels.triton.hj_attention as hja

    calls: list[tuple[int, ...]] = []
    real = hja.hj_attention_fwd_parts

    def spy(*a, **kw):
        calls.append(tuple(a[0].shape))
        return real(*a, **kw)

    monkeypatch.setattr(hja, "hj_attention_fwd_parts", spy)
    model, inputs = getattr(instr_models, build)()
    B, S = inputs["input_ids"].shape
    H = model.config.num_attention_heads

    with torch.no_grad():
        stock = model(**inputs)[0]  # transformers' own SDPA attention, no hjplug
    out_t, rec_t, calls_t = _run(model, inputs, "triton", monkeypatch, calls)
    out_r, rec_r, calls_r = _run(model, inputs, "reference", monkeypatch, calls)

    assert calls_t == [(B, H, S, model.config.hidden_size // H)] * N_LAYERS, calls_t
    assert calls_r == []
    assert "attention statistics backend: kernel" in rec_t.notes

    torch.testing.assert_close(out_t, out_r, **TOL)
    torch.testing.assert_close(out_t, stock, **TOL)
    assert rec_t.keys() == rec_r.keys()
    for i in range(N_LAYERS):
        for name in ("entropy", "lse"):
            assert f"layers.{i}.attn.{name}" in rec_t, rec_t.keys()
    for key in rec_t:
        a, b = rec_t[key], rec_r[key]
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if a.is_floating_point():
            torch.testing.assert_close(a, b, **TOL, equal_nan=True,
                                       msg=lambda m, key=key: f"{key}: {m}")
        else:
            assert torch.equal(a, b), key
    for i in range(N_LAYERS):  # 0 ≤ H ≤ log(visible keys), all rows finite
        ent, keys = rec_t[f"layers.{i}.attn.entropy"], rec_t[f"layers.{i}.attn.keys"]
        assert ent.shape == (B, H, S) and torch.isfinite(ent).all()
        assert (ent >= -1e-6).all() and (ent <= keys.double().log() + 1e-5).all()
        assert torch.isfinite(rec_t[f"layers.{i}.attn.lse"]).all()
