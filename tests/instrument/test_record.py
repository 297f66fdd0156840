"""hjplug.instrument: statistics against an independent eager computation, hook hygiene,
nesting, concurrency, NaN flags, bad input, save / dataframe, readouts and gates."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import threading

import pytest
import torch
from instr_models import bert, eager_twin, gpt2, hook_snapshot

import hjplug
from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument import STATS, instrument, regime

ALL = ("epsilon", "lse", "entropy", "gap", "topk", "curvature")


def _eager_reference(model, inputs, kind: str):
    """Per layer: (π [B,H,S,S] from output_attentions=True, lse from recomputed raw scores)."""
    twin = eager_twin(model)
    with torch.no_grad():
        out = twin(**inputs, output_attentions=True, output_hidden_states=True)
    mask = inputs["attention_mask"].bool()  # [B, S]
    B, S = mask.shape
    refs = []
    for layer, att in enumerate(out.attentions):
        h = out.hidden_states[layer]
        if kind == "bert":
            sa = twin.encoder.layer[layer].attention.self
            H, d = sa.num_attention_heads, sa.attention_head_size
            q = sa.query(h).view(B, S, H, d).transpose(1, 2)
            k = sa.key(h).view(B, S, H, d).transpose(1, 2)
            vis = mask[:, None, None, :].expand(B, 1, S, S)
        else:
            blk = twin.transformer.h[layer]
            H = blk.attn.num_heads
            d = blk.attn.head_dim
            q, k, _ = blk.attn.c_attn(blk.ln_1(h)).split(H * d, dim=2)
            q = q.view(B, S, H, d).transpose(1, 2)
            k = k.view(B, S, H, d).transpose(1, 2)
            causal = torch.ones(S, S, dtype=torch.bool).tril()
            vis = (mask[:, None, None, :] & causal).expand(B, 1, S, S)
        s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(~vis, float("-inf"))
        refs.append((att.double(), torch.logsumexp(s, -1), vis.sum(-1).expand(B, H, S), q, k,
                     vis, math.sqrt(d)))
    return refs


@pytest.mark.parametrize("backend", ["stats", "kernel"])
@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_statistics_match_eager_output_attentions(kind: str, backend: str) -> None:
    model, inputs = (bert if kind == "bert" else gpt2)()
    refs = _eager_reference(model, inputs, kind)
    with torch.no_grad(), instrument(model, stats=ALL, topk=3, backend=backend) as rec:
        model(**inputs)
    for layer, (p, lse, keys, *_rest) in enumerate(refs):
        pre = f"layers.{layer}.attn"
        ent = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)
        assert torch.equal(rec[f"{pre}.keys"], keys)
        torch.testing.assert_close(rec[f"{pre}.entropy"].double(), ent, atol=1e-5, rtol=0)
        norm = torch.where(keys > 1, ent / keys.double().clamp_min(2).log(),
                           torch.full_like(ent, math.nan))
        torch.testing.assert_close(rec[f"{pre}.normalized_entropy"].double(), norm, atol=1e-5,
                                   rtol=0, equal_nan=True)
        torch.testing.assert_close(rec[f"{pre}.lse"].double(), lse, atol=1e-5, rtol=1e-6)
        eps = rec[f"{pre}.epsilon"].double()
        torch.testing.assert_close(rec[f"{pre}.value"].double(), eps.view(1, -1, 1) * lse,
                                   atol=1e-4, rtol=1e-6)
        tw, ti = p.topk(3, dim=-1)
        ti = torch.where(tw > 0, ti, torch.full_like(ti, -1))  # removed keys: no index
        torch.testing.assert_close(rec[f"{pre}.topk_weights"].double(), tw, atol=1e-5, rtol=0)
        distinct = (tw[..., :-1] - tw[..., 1:]).abs().min(-1).values > 1e-4  # no near-ties
        assert distinct.float().mean() > 0.5
        assert torch.equal(rec[f"{pre}.topk_indices"][distinct], ti[distinct])
        gap = tw[..., 0].log() - tw[..., 1].log()
        ok = keys > 1
        torch.testing.assert_close(rec[f"{pre}.gap"].double()[ok], gap[ok], atol=2e-4, rtol=1e-4)


def test_curvature_is_the_hessian_norm_of_the_hj_value() -> None:
    """‖∇²_q f‖₂ for f(q) = ε·LSE((q·k_j + b_j)/ε), by autograd (fp64), and its bound."""
    model, inputs = bert()
    (_, _, _, q, k, vis, sqrt_d), *_ = _eager_reference(model, inputs, "bert")
    with torch.no_grad(), instrument(model, stats=("curvature",)) as rec:
        model(**inputs)
    curv, bound = rec["layers.0.attn.curvature"], rec["layers.0.attn.curvature_bound"]
    eps = sqrt_d  # ε = 1/scaling
    for b, h, i in [(0, 0, 0), (0, 3, 5), (1, 1, 8), (2, 2, 9)]:
        K = k[b, h].double().detach()
        mask = vis[b, 0, i]
        bias = torch.where(mask, 0.0, float("-inf")).double()

        def f(x: torch.Tensor, K: torch.Tensor = K, bias: torch.Tensor = bias) -> torch.Tensor:
            return eps * torch.logsumexp((K @ x + bias) / eps, dim=0)
        hess = torch.autograd.functional.hessian(f, q[b, h, i].double().detach())
        ref = torch.linalg.matrix_norm(hess, ord=2)
        torch.testing.assert_close(curv[b, h, i], ref, rtol=1e-5, atol=1e-9)
        ref_bound = (K[mask] ** 2).sum(-1).max() / eps
        torch.testing.assert_close(bound[b, h, i], ref_bound, rtol=1e-5, atol=1e-9)
        assert curv[b, h, i] <= bound[b, h, i] + 1e-12


def test_hooks_exist_only_inside_the_context_also_after_an_exception() -> None:
    model, inputs = gpt2()
    before = hook_snapshot(model)
    with instrument(model, stats=ALL) as rec:
        inside = hook_snapshot(model)
        model(**inputs)
    assert inside != before  # something was registered
    assert hook_snapshot(model) == before
    assert len(rec) > 0
    with pytest.raises(RuntimeError, match="boom"), instrument(model, stats=STATS):
        model(**inputs)
        raise RuntimeError("boom")
    assert hook_snapshot(model) == before
    # and the model is numerically the stock one again
    ref, _ = gpt2()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, ref(**inputs).logits, rtol=0, atol=0)


def test_enabled_model_keeps_its_state() -> None:
    from hjplug.integrations.huggingface import enable

    model, inputs = bert()
    m = enable(model, stats=True)
    before = hook_snapshot(m)
    with instrument(m, stats=("entropy", "curvature")):
        m(**inputs)
    assert hook_snapshot(m) == before


def test_nested_and_concurrent_contexts() -> None:
    a, ia = bert()
    b, ib = gpt2()
    snap_a, snap_b = hook_snapshot(a), hook_snapshot(b)
    with torch.no_grad(), instrument(a, stats=("entropy",)) as outer:
        a(**ia)
        with instrument(a, stats=("entropy", "curvature")) as inner, \
                instrument(b, stats=("lse",)) as other:
            a(**ia)
            b(**ib)
        a(**ia)
    assert len(outer.calls("layers.0.attn.entropy")) == 3
    assert len(inner.calls("layers.0.attn.entropy")) == 1
    assert "layers.0.attn.curvature" in inner and "layers.0.attn.curvature" not in outer
    assert all(p.startswith("transformer.") or p == "lm_head" for p in other.paths.values())
    assert "layers.0.attn.entropy" not in other and "layers.0.attn.lse" in other
    torch.testing.assert_close(outer.calls("layers.1.attn.entropy")[0],
                               inner["layers.1.attn.entropy"])
    assert hook_snapshot(a) == snap_a and hook_snapshot(b) == snap_b

    results: dict[str, torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(name: str, model, inputs) -> None:
        try:
            for _ in range(3):
                with torch.no_grad(), instrument(model, stats=("entropy", "curvature")) as r:
                    model(**inputs)
                results[name] = r["layers.1.attn.curvature"]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=("a", a, ia)),
               threading.Thread(target=work, args=("b", b, ib))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results["a"].shape[1] == 4 and results["b"].shape[1] == 4
    assert hook_snapshot(a) == snap_a and hook_snapshot(b) == snap_b


@pytest.mark.parametrize("backend", ["stats", "kernel"])
def test_nan_inputs_are_flagged_per_row_never_averaged(backend: str) -> None:
    model, inputs = bert()
    emb = model.embeddings.word_embeddings(inputs["input_ids"]).detach().clone()
    emb[1, 4] = float("nan")  # one token of batch row 1
    with torch.no_grad(), instrument(model, stats=("entropy", "lse"), backend=backend) as rec:
        model(inputs_embeds=emb, attention_mask=inputs["attention_mask"])
    nan = rec["layers.1.attn.nan"]
    assert bool(nan[1].any()) and not bool(nan[0].any()) and not bool(nan[2].any())
    s = rec.summary()
    assert all(h.nan_rows > 0 for h in s if h.name.startswith("layers."))
    assert all(math.isfinite(h.mean_entropy) for h in s if h.name.startswith("layers."))
    with torch.no_grad(), instrument(model, stats=("entropy",)) as clean:
        model(inputs_embeds=emb[[0, 2]], attention_mask=inputs["attention_mask"][[0, 2]])
    for h_nan, h_clean in zip(s, clean.summary(), strict=True):
        assert h_nan.mean_entropy == pytest.approx(h_clean.mean_entropy, abs=1e-6)


def test_bad_input_errors() -> None:
    model, inputs = bert()
    with pytest.raises(InvalidArgumentError, match="epsilon, lse, entropy, gap, topk"), \
            instrument(model, stats=("entropy", "entropie")):
        pass
    with pytest.raises(InvalidArgumentError, match="topk"), instrument(model, topk=0):
        pass
    with pytest.raises(InvalidArgumentError, match="backend"), instrument(model, backend="gpu"):
        pass
    with pytest.raises(InvalidArgumentError, match="model"), instrument("bert"):  # type: ignore
        pass
    with instrument(model) as rec:
        model(**inputs)
    with pytest.raises(KeyError, match=r"layers\.1\.attn\.entropy"):
        rec["layers.1.attn.entropie"]
    assert hook_snapshot(model) == hook_snapshot(bert()[0])


def test_regime_thresholds_and_summary() -> None:
    assert regime(0.3299) == "particle" and regime(0.33) == "mixed" and regime(0.66) == "mixed"
    assert regime(0.6601) == "wave" and regime(float("nan")) == "n/a"
    model, inputs = bert()
    with torch.no_grad(), instrument(model, stats=("entropy", "gap")) as rec:
        model(**inputs)
    s = rec.summary()
    attn = [h for h in s if h.kind == "attention"]
    assert len(attn) == 2 * 4
    for h in attn:
        n = rec[f"{h.name}.normalized_entropy"][:, h.head]
        k = rec[f"{h.name}.keys"][:, h.head]
        real = inputs["attention_mask"].bool()  # [B, Sq]: padded queries are left out
        assert h.mean_normalized_entropy == pytest.approx(float(n[(k > 1) & real].mean()),
                                                          rel=1e-6)
        assert h.regime == regime(h.mean_normalized_entropy)
        assert h.epsilon == pytest.approx(math.sqrt(8))
    with torch.no_grad(), hjplug.instrument.deform(model, 0.02, heads=[1]), \
            instrument(model, stats=("entropy",)) as cold:  # ε_1 → 0.02·ε_1: towards hard-max
        model(**inputs)
    regimes = {(h.name, h.head): h.regime for h in cold.summary() if h.kind == "attention"}
    assert regimes[("layers.0.attn", 1)] == "particle"
    assert regimes[("layers.0.attn", 0)] == "wave"
    assert cold.summary()[1].epsilon == pytest.approx(0.02 * math.sqrt(8))


def test_save_is_atomic_and_round_trips(tmp_path, monkeypatch) -> None:
    model, inputs = bert()
    with torch.no_grad(), instrument(model, stats=("entropy", "topk")) as rec:
        model(**inputs)
    js = rec.save(tmp_path / "rec.json")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(js.stat().st_mode) == 0o666 & ~mask  # as open() would, not 0600
    data = json.loads(js.read_text())
    assert len(data["summary"]) == len(rec.summary()) and "layers.0.attn.entropy" in data["hooks"]
    pt = rec.save(tmp_path / "rec.pt")
    back = torch.load(pt)
    torch.testing.assert_close(back["stats"]["layers.1.attn.entropy"],
                               rec["layers.1.attn.entropy"])
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(HJPlugError, match=r"cannot write .*broken.pt \(disk\)"):
        rec.save(tmp_path / "broken.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.json", "rec.pt"]


def test_to_dataframe_without_pandas_says_how_to_install(monkeypatch) -> None:
    model, inputs = bert()
    with torch.no_grad(), instrument(model) as rec:
        model(**inputs)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(HJPlugError, match="pip install pandas"):
        rec.to_dataframe()
    with pytest.raises(HJPlugError, match="pip install pandas"):
        rec.to_dataframe(per="row")
    cols = rec._row_columns()
    assert len(cols["entropy"]) == 2 * 3 * 4 * 10


def test_lm_head_readout_statistics() -> None:
    model, inputs = gpt2()
    with torch.no_grad(), instrument(model, stats=("entropy", "lse", "topk", "curvature"),
                                     topk=4) as rec:
        out = model(**inputs)
    z = out.logits.double()  # [B, S, V]
    ent = torch.distributions.Categorical(logits=z).entropy()
    torch.testing.assert_close(rec["readout.lm_head.entropy"].double(), ent, atol=1e-5, rtol=0)
    torch.testing.assert_close(rec["readout.lm_head.lse"].double(), torch.logsumexp(z, -1),
                               atol=1e-5, rtol=1e-6)
    assert torch.equal(rec["readout.lm_head.topk_indices"], z.topk(4, -1).indices)
    # curvature of LSE(W x) in x: Cov_π(W), with W the tied embedding (rows = atoms)
    W = model.lm_head.weight.double()
    p = torch.softmax(z[0, 2], -1)
    mu = p @ W
    cov = (W - mu).T @ ((W - mu) * p[:, None])
    ref = torch.linalg.eigvalsh(cov)[-1]
    torch.testing.assert_close(rec["readout.lm_head.curvature"][0, 2], ref, rtol=1e-5, atol=1e-9)
    assert rec.paths["readout.lm_head"] == "lm_head"


def test_lstm_gates_are_two_atom_gibbs_weights() -> None:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7, batch_first=True)
    x = torch.randn(2, 6, 5)
    with torch.no_grad(), instrument(lstm, stats=("entropy", "lse")) as rec:
        lstm(x)
    cell = torch.nn.LSTMCell(5, 7)
    cell.load_state_dict({"weight_ih": lstm.weight_ih_l0, "weight_hh": lstm.weight_hh_l0,
                          "bias_ih": lstm.bias_ih_l0, "bias_hh": lstm.bias_hh_l0})
    h = c = torch.zeros(2, 7)
    forget = []
    with torch.no_grad():
        for t in range(6):
            z = x[:, t] @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
            forget.append(z.chunk(4, -1)[1])
            h, c = cell(x[:, t], (h, c))
    zf = torch.stack(forget, 1)  # [B, T, U]
    s = torch.sigmoid(zf)
    ent = -(s * s.log() + (1 - s) * (1 - s).log())
    torch.testing.assert_close(rec["gates.0.forget.entropy"], ent, atol=1e-5, rtol=0)
    assert not lstm._forward_hooks


def test_callable_package_and_lazy_names() -> None:
    import subprocess

    code = ("import sys, hjplug; assert 'torch' not in sys.modules; i = hjplug.instrument; "
            "assert callable(i) and callable(i.deform) and i.instrument is not i; "
            "assert hjplug.sweep is i.sweep and hjplug.attribute is i.attribute")
    subprocess.run([sys.executable, "-c", code], check=True)
    import hjplug.instrument as pkg

    model, inputs = bert()
    with pkg(model, stats=("entropy",)) as rec:
        model(**inputs)
    assert "layers.0.attn.entropy" in rec
    assert hjplug.sweep is pkg.sweep and hjplug.attribute is pkg.attribute
