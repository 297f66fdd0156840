"""FX-converted models (hjplug.convert) through instrument / deform / sweep / attribute, and the
`hjplug stats` / `hjplug sweep` commands."""

from __future__ import annotations

import json

import pytest
import torch
from instr_models import bert

import hjplug
from hjplug.cli import main
from hjplug.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def converted():
    model, inputs = bert()
    return model, hjplug.convert(model, inputs), inputs


def test_fx_statistics_match_the_hf_path(converted) -> None:
    model, hj, inputs = converted
    stats = ("entropy", "lse", "topk", "gap", "curvature")
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as fx, \
            hjplug.instrument(model, stats=stats) as hf:
        hj(**inputs)
        model(**inputs)
    for layer in (0, 1):
        for s in ("entropy", "lse", "value", "normalized_entropy", "topk_weights",
                  "curvature", "curvature_bound"):
            name = f"layers.{layer}.attn.{s}"
            torch.testing.assert_close(fx[name].double(), hf[name].double(), atol=1e-5,
                                       rtol=1e-6, equal_nan=True)
        assert torch.equal(fx[f"layers.{layer}.attn.keys"], hf[f"layers.{layer}.attn.keys"])
    assert fx.paths["layers.1.attn"] == "encoder.layer.1.attention.self"
    assert not any(s._observers for s in hj.steps.values())  # hook points released


def test_fx_deform_sweep_attribute(converted) -> None:
    model, hj, inputs = converted
    step = hj.steps["encoder.layer.0.attention.self"]
    eps0 = step.epsilon
    with hjplug.instrument.deform(hj, 0.25, layers=[0]):
        assert step.epsilon == pytest.approx(0.25 * eps0)
        with hjplug.instrument.deform(model, 0.25, layers=[0]), torch.no_grad(), \
                hjplug.instrument(hj) as a, hjplug.instrument(model) as b:
            hj(**inputs)
            model(**inputs)
        torch.testing.assert_close(a["layers.0.attn.entropy"], b["layers.0.attn.entropy"],
                                   atol=1e-5, rtol=0)
    assert step.epsilon == eps0 and step.at_identified
    # one ε per head: the chosen heads deformed, the others at ε₀ — as the HF path does it
    with hjplug.instrument.deform(hj, 0.3, layers=[1], heads=[0, 2]), \
            hjplug.instrument.deform(model, 0.3, layers=[1], heads=[0, 2]), torch.no_grad(), \
            hjplug.instrument(hj, stats=("entropy", "lse")) as a, \
            hjplug.instrument(model, stats=("entropy", "lse")) as b:
        step1 = hj.steps["encoder.layer.1.attention.self"]
        assert step1.epsilon == (0.3 * eps0, eps0, 0.3 * eps0, eps0)
        out_fx = hj(**inputs).last_hidden_state
        out_hf = model(**inputs).last_hidden_state
    torch.testing.assert_close(out_fx, out_hf, atol=1e-5, rtol=1e-5)
    for s in ("entropy", "value", "epsilon"):
        torch.testing.assert_close(a[f"layers.1.attn.{s}"].double(),
                                   b[f"layers.1.attn.{s}"].double(), atol=1e-5, rtol=1e-6)
    assert step1.at_identified
    # persistent per-head ε: attribution reads head 0's ε, a sweep of layer 0 runs beside it
    d_fx = hjplug.deform(hj, 0.3, layers=[1], heads=[0])  # persistent until restored
    try:
        a_fx = hjplug.attribute(hj, inputs, layer=1, head=0)
        with hjplug.instrument.deform(model, 0.3, layers=[1], heads=[0]):
            a_hf = hjplug.attribute(model, inputs, layer=1, head=0)
        assert a_fx.epsilon == pytest.approx(a_hf.epsilon) == pytest.approx(0.3 * eps0)
        torch.testing.assert_close(a_fx.weights, a_hf.weights, atol=1e-6, rtol=0)
        sw1 = hjplug.sweep(hj, inputs, [0.5, 1.0], layers=[0], folds=False, progress=False)
        assert sw1.ok and sw1.epsilon[0, 1, 0] == pytest.approx(0.3 * eps0)
    finally:
        d_fx.restore()
    with pytest.raises(InvalidArgumentError, match="heads"), \
            hjplug.instrument.deform(hj, 0.5, heads=[4]):
        pass
    with pytest.raises(InvalidArgumentError, match="scale"), \
            hjplug.instrument.deform(hj, 0.0, heads=[1]):
        pass
    assert all(s.at_identified for s in hj.steps.values() if hasattr(s, "at_identified"))
    sw = hjplug.sweep(hj, inputs, [0.5, 1.0, 2.0], layers=[0], folds=False, progress=False)
    ref = hjplug.sweep(model, inputs, [0.5, 1.0, 2.0], layers=[0], folds=False, progress=False)
    assert sw.ok and sw.checked > 0
    torch.testing.assert_close(sw.entropy, ref.entropy, atol=1e-5, rtol=0)
    sw_h = hjplug.sweep(hj, inputs, [0.5, 1.0, 2.0], layers=[0], heads=[1, 3], folds=False,
                        progress=False)
    ref_h = hjplug.sweep(model, inputs, [0.5, 1.0, 2.0], layers=[0], heads=[1, 3], folds=False,
                         progress=False)
    assert sw_h.ok and sw_h.checked > 0 and sw_h.heads == (1, 3)
    torch.testing.assert_close(sw_h.entropy, ref_h.entropy, atol=1e-5, rtol=0)
    torch.testing.assert_close(sw_h.epsilon, ref_h.epsilon, atol=1e-9, rtol=1e-9)
    assert sw_h.epsilon[0, 0, 0] == pytest.approx(eps0) and \
        sw_h.epsilon[0, 0, 1] == pytest.approx(0.5 * eps0)  # unchosen head stays at ε₀
    attr = hjplug.attribute(hj, inputs, layer=1, head=2)
    torch.testing.assert_close(attr.weights, hjplug.attribute(model, inputs, layer=1,
                                                              head=2).weights, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def config_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps({"model_type": "bert", "hidden_size": 32,
                                "num_hidden_layers": 2, "num_attention_heads": 4,
                                "intermediate_size": 37, "vocab_size": 97}))
    return str(path)


def test_cli_stats_json(config_json, capsys, tmp_path) -> None:
    out_file = tmp_path / "rec.json"
    assert main(["stats", config_json, "--json", "--save", str(out_file)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["heads"]) == 8 and data["heads"][0]["name"] == "layers.0.attn"
    assert {h["regime"] for h in data["heads"]} <= {"particle", "mixed", "wave"}
    assert json.loads(out_file.read_text())["summary"]
    assert main(["stats", config_json, "--stats", "entropy,bogus"]) == 2
    assert "entropy, gap, topk, curvature" in capsys.readouterr().err


def test_cli_sweep(config_json, capsys, tmp_path) -> None:
    png = tmp_path / "sweep.png"
    assert main(["sweep", config_json, "--scales", "0.5:2:3", "--layers", "0", "--json",
                 "--plot", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["scales"]) == 3 and data["monotonicity"]["violations"] == 0
    assert isinstance(data["folds"], list) and isinstance(data["exits"], list)  # exits ≠ folds
    assert png.stat().st_size > 1000
    assert main(["sweep", config_json, "--scales", "0,1"]) == 2
    assert "scales" in capsys.readouterr().err
    assert main(["sweep", config_json, "--scales", "1", "--layers", "7", "--no-folds"]) == 2
