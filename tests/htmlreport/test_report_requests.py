"""`hjplug report`: a --query / --fold-head the model does not have is refused up front (exit 2,
one line: expected, found, what to do) — before any stage runs and before the output exists."""

from __future__ import annotations

import json

import pytest

from hjplug.cli import main


@pytest.fixture
def tiny(tmp_path):
    """A 2-layer, 4-head BERT config (random weights, synthesised inputs)."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "intermediate_size": 37,
                               "vocab_size": 97}))
    return cfg


@pytest.fixture
def no_stages(monkeypatch):
    """Any stage running is a failure: the refusal must come first."""
    def boom(*a, **k):
        raise AssertionError("a stage ran before the request was checked")
    monkeypatch.setattr("hjplug.htmlreport.collect", boom)
    monkeypatch.setattr("hjplug.inspect", boom)
    monkeypatch.setattr("hjplug.sweep", boom)


def _tokens(cfg) -> int:
    from hjplug.api import load_model

    return int(load_model(cfg).inputs["input_ids"].shape[-1])


@pytest.mark.parametrize(("extra", "expected", "found"), [
    (["--fold-head", "2,0"], "LAYER in [0, 2) (the model has 2 attention blocks)", "(2, 0)"),
    (["--fold-head", "1,4"], "HEAD in [0, 4) (attention block 1 has 4 heads)", "(1, 4)"),
    (["--query", "999"], "a token position in [0, {n}) (the input has {n} tokens)", "999"),
])
def test_out_of_range_is_refused_after_load(tiny, tmp_path, capsys, no_stages, extra, expected,
                                            found) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(tiny), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    n = _tokens(tiny)
    flag = extra[0]
    assert lines[0].startswith(f"hjplug report: error: argument '{flag}' must be "
                               f"{expected.format(n=n)}; got {found}."), lines[0]
    assert "omit " + flag in lines[0]  # what to do
    assert not out.exists()


@pytest.mark.parametrize(("extra", "msg"), [
    (["--query=-3"], "argument '--query' must be a token position ≥ 0; got -3."),
    (["--fold-head=-1,0"], "argument '--fold-head' must be LAYER,HEAD: two integers ≥ 0; got "
                           "(-1, 0)."),
])
def test_negative_is_refused_before_loading(tmp_path, capsys, monkeypatch, extra, msg) -> None:
    import hjplug.api

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before a negative index was refused")
    monkeypatch.setattr(hjplug.api, "load_model", no_load)
    assert main(["report", "-o", str(tmp_path / "r.html"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err, err


@pytest.mark.parametrize("bad", ["a,b", "1", "1,2,3", "1.5,2"])
def test_malformed_fold_head_is_a_usage_error(tmp_path, capsys, bad) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "-o", str(tmp_path / "r.html"), "--fold-head", bad])
    assert exc.value.code == 2
    assert f"argument --fold-head: expected LAYER,HEAD (two ints); got {bad!r}" in \
        capsys.readouterr().err


def test_valid_indices_are_used(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "r.md"
    assert main(["report", str(tiny), "-o", str(out), "--format", "md", "--query", "0",
                 "--fold-head", "1,3", "--topk", "2"]) == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert "layers.1.attn head 3" in text


def test_collect_refuses_too(tiny) -> None:
    from hjplug.api import load_model
    from hjplug.errors import InvalidArgumentError
    from hjplug.htmlreport import collect

    with pytest.raises(InvalidArgumentError, match="HEAD in"):
        collect(load_model(tiny), fold_head=(0, 9))
