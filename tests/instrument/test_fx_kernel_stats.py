"""FX-converted attention steps: statistics-only observation dispatches to hj_attention (no
[Sq, Sk] scores), agrees with the HF path and with the explicit evaluation, and falls back
with the reason where the kernel cannot take the call."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from instr_models import bert

import hjplug
import hjplug.kernels as kernels
from hjplug.kernels.registry import KernelFallbackWarning
from hjplug.modules import attention as attention_mod
from hjplug.modules import attention_stats as st_mod
from hjplug.modules.attention_stats import AttentionStepStats, explicit_stats, kernel_call

STATS = ("entropy", "lse", "topk", "gap")


@pytest.fixture(scope="module")
def converted():
    model, inputs = bert()
    return model, hjplug.convert(model, inputs), inputs


def test_stats_only_run_the_kernel_and_match_hf(converted, monkeypatch) -> None:
    model, hj, inputs = converted
    calls = {"kernel": 0}
    real = kernels.hj_attention

    def counting(*a, **kw):
        calls["kernel"] += 1
        return real(*a, **kw)

    def no_scores(*a, **kw):
        raise AssertionError("the explicit [Sq, Sk] path ran")

    monkeypatch.setattr(kernels, "hj_attention", counting)
    monkeypatch.setattr(attention_mod, "gibbs_attention", no_scores)
    with torch.no_grad():
        ref_out = hj(**inputs).last_hidden_state
        with hjplug.instrument(hj, stats=STATS, topk=3) as fx:
            out = hj(**inputs).last_hidden_state
    monkeypatch.undo()
    assert calls["kernel"] == 2  # one per attention block
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    assert any("reference path" in n for n in fx.notes), fx.notes
    with torch.no_grad(), hjplug.instrument(model, stats=STATS, topk=3) as hf:
        model(**inputs)
    for layer in (0, 1):
        for s in ("entropy", "lse", "value", "normalized_entropy", "topk_weights", "gap"):
            name = f"layers.{layer}.attn.{s}"
            torch.testing.assert_close(fx[name].double(), hf[name].double(), atol=1e-5,
                                       rtol=1e-6, equal_nan=True)
        for s in ("keys", "topk_indices"):
            assert torch.equal(fx[f"layers.{layer}.attn.{s}"], hf[f"layers.{layer}.attn.{s}"])
    assert fx["layers.0.attn.keys"][0, 0, 0] == 7  # row 0: 3 padded keys are removed atoms
    assert not any(s._observers for s in hj.steps.values())


def test_kernel_stats_equal_the_explicit_ones(converted) -> None:
    _, hj, inputs = converted
    step = hj.steps["encoder.layer.1.attention.self"]
    got: dict[str, AttentionStepStats] = {}
    for name, extra in (("kernel", False), ("explicit", True)):
        handles = [step.observe_stats(lambda s, p, r, n=name: got.__setitem__(n, r), topk=4)]
        if extra:  # observing the scores forces the explicit evaluation
            handles.append(step.observe("scores", lambda *a: None))
        with torch.no_grad():
            hj(**inputs)
        for h in handles:
            h.remove()
    a, b = got["kernel"], got["explicit"]
    assert a.backend == "reference" and b.backend == "explicit" and "observed" in b.reason
    for f in ("lse", "entropy", "topk_weights"):
        torch.testing.assert_close(getattr(a, f), getattr(b, f), atol=1e-5, rtol=1e-6)
    assert torch.equal(a.keys, b.keys) and torch.equal(a.topk_indices, b.topk_indices)


def test_explicit_stats_against_fp64_math() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64) * 3
    z[0, 0, 0, 2:] = float("-inf")  # 2 visible keys
    z[1, 2, 4, :] = torch.finfo(torch.float64).min  # HF's finite stand-in: no key at all
    r = explicit_stats(z, 0.5, 3, "test")
    zz = z.clone()
    zz[1, 2, 4] = 0.0
    ref_h = hjplug.math.entropy(zz)
    ref_lse = torch.logsumexp(zz, -1)
    ok = torch.ones_like(ref_h, dtype=torch.bool)
    ok[1, 2, 4] = False
    torch.testing.assert_close(r.entropy[ok], ref_h[ok], atol=1e-12, rtol=0)
    torch.testing.assert_close(r.lse[ok], ref_lse[ok], atol=1e-12, rtol=0)
    assert r.keys[0, 0, 0] == 2 and r.keys[1, 2, 4] == 0 and r.lse[1, 2, 4] == -math.inf
    assert r.entropy[1, 2, 4] == 0 and (r.topk_indices[1, 2, 4] == -1).all()
    assert (r.topk_indices[0, 0, 0, 2] == -1) and r.topk_weights[0, 0, 0, 2] == 0
    # tropical limit: uniform over the ties of the raw scores, lse diverges
    s = torch.tensor([[[[1.0, 3.0, 3.0, -1.0]]]])
    t = explicit_stats(s, 0.0, 2, "tropical")
    assert t.entropy.item() == pytest.approx(math.log(2)) and t.lse.item() == math.inf
    assert t.topk_weights[0, 0, 0].tolist() == [0.5, 0.5]


def test_kernel_call_reasons_and_one_time_warning(monkeypatch) -> None:
    q = torch.randn(2, 4, 5, 8)
    assert "ε = 0" in kernel_call(q, q, q, [], False, 0.0, False)
    assert "ranks" in kernel_call(q, q[0], q, [], False, 1.0, False)
    bad = torch.zeros(3, 1, 5, 5)
    assert "not broadcastable" in kernel_call(q, q, q, [bad], False, 1.0, False)
    c = kernel_call(q[0], q[0].transpose(-1, -2), q[0], [torch.zeros(4, 5, 5)], True, 1.0, True)
    assert not isinstance(c, str) and c.squeeze and c.q.shape == (1, 4, 5, 8)
    assert st_mod.visible_keys(c)[0, 0].tolist() == [1, 2, 3, 4, 5]  # causal
    monkeypatch.setattr(st_mod, "_WARNED", set())
    with pytest.warns(KernelFallbackWarning, match="ranks"):
        st_mod.warn_fallback("step", "ranks 4/3/4", on_cuda=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st_mod.warn_fallback("step", "ranks 4/3/4", on_cuda=True)  # once per reason
        st_mod.warn_fallback("step", "other", on_cuda=False)  # CPU: nothing to fall back from


def test_tropical_step_reports_explicit_stats(converted) -> None:
    _, hj, inputs = converted
    with torch.no_grad(), hjplug.instrument.deform(hj, 0.0, layers=[0]), \
            hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
        hj(**inputs)
    assert any("explicit path (ε = 0" in n for n in rec.notes), rec.notes
    h = rec["layers.0.attn.entropy"]
    ties_free = h[rec["layers.0.attn.keys"] > 0]
    assert torch.all(ties_free >= 0) and torch.all(ties_free <= math.log(10) + 1e-6)
    assert torch.isinf(rec["layers.0.attn.lse"]).all()


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_deformed_steps_without_statistics_skip_the_explicit_scores(impl, monkeypatch) -> None:
    """ε → λ·ε with nothing observed: SDPA at scale 1/ε (sdpa steps) or hj_attention (eager
    steps), equal to the explicit Gibbs evaluation."""
    model, inputs = bert(impl)
    hj = hjplug.convert(model, inputs)
    with torch.no_grad(), hjplug.deform(hj, 0.4):
        want_handles = [s.observe("scores", lambda *a: None) for s in hj.steps.values()
                        if isinstance(s, attention_mod.HJAttentionStep)]
        want = hj(**inputs).last_hidden_state  # scores observed: the explicit path
        for h in want_handles:
            h.remove()

        def no_scores(*a, **kw):
            raise AssertionError("the explicit [Sq, Sk] path ran")

        monkeypatch.setattr(attention_mod, "gibbs_attention", no_scores)
        got = hj(**inputs).last_hidden_state
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    monkeypatch.undo()
    with torch.no_grad():
        assert not torch.allclose(hj(**inputs).last_hidden_state, got, atol=1e-3)  # restored


def test_replayed_chain_reports_statistics() -> None:
    """Bloom's ALiBi chain (baddbmm + reshapes) is replayed, not rewritten into q·kᵀ form: its
    statistics now come from the replay's softmax input, against eager output_attentions."""
    import transformers as tf

    tf.logging.set_verbosity_error()
    cfg = tf.AutoConfig.for_model("bloom", n_layer=2, hidden_size=32, n_head=4, vocab_size=97)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = tf.AutoModel.from_config(cfg).eval()
    inputs = {"input_ids": torch.randint(3, 97, (2, 9)),
              "attention_mask": torch.tensor([[1] * 9, [1] * 6 + [0] * 3])}
    hj = hjplug.convert(model, inputs)
    steps = [s for s in hj.steps.values() if isinstance(s, attention_mod.HJAttentionStep)]
    assert steps and all(s.deform_core is not None for s in steps)  # the replayed kind
    with torch.no_grad():
        ref = model(**inputs, output_attentions=True).attentions
        with hjplug.instrument(hj, stats=("entropy", "topk"), topk=2) as rec:
            out = hj(**inputs).last_hidden_state
        torch.testing.assert_close(out, model(**inputs).last_hidden_state, atol=1e-5,
                                   rtol=1e-5)
    assert any("replayed" in n for n in rec.notes), rec.notes
    for i, p in enumerate(ref):
        p = p.double()  # [B, H, T, T]
        h = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)
        got = rec[f"layers.{i}.attn.entropy"].double().reshape(h.shape)
        rows = torch.ones_like(h, dtype=torch.bool)
        rows[1, :, 6:] = False  # padded queries: eager keeps finfo.min rows, not compared
        torch.testing.assert_close(got[rows], h[rows], atol=1e-5, rtol=0)
        keys = rec[f"layers.{i}.attn.keys"].reshape(h.shape)
        assert keys[1, 0, 5] == 6 and keys[0, 0, 8] == 9  # causal + padding removed, not atoms
