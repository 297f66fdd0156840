"""`hjplug paper`: --quick end to end, determinism, bad input, atomic files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hjplug.cli import main
from hjplug.paper import EXPERIMENTS, run_paper

FIGURES = ("exp1_identities.png", "exp2_recovery.png", "exp3_quadrature.png",
           "exp4_robustness.png", "exp5_phase.png", "exp6_folds.png")


def test_quick_end_to_end_writes_figures_and_verdicts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "paper"
    assert main(["paper", "--quick", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("verdict: PASS") == 6 and "all 6 experiments pass" in text
    assert "entropy non-decreasing in ε: ok" in text

    import matplotlib.image as mpimg

    for name in FIGURES:
        img = mpimg.imread(out / name)  # a real, decodable PNG that is not blank
        assert img.shape[0] > 200 and img.shape[1] > 300 and float(img[..., :3].std()) > 0.02
    report = json.loads((out / "report.json").read_text())
    assert report["quick"] is True and report["passed"] is True
    assert [r["name"] for r in report["results"]] == list(EXPERIMENTS)
    for r in report["results"]:
        assert r["verdict"]["passed"] and r["verdict"]["criterion"] and r["entropy_check"]["passed"]
        assert r["entropy_check"]["violations"] == 0 and r["entropy_check"]["n_points"] > 0
        assert Path(r["figure"]).name in FIGURES and r["rows"]
    # atomic writes leave no temp files behind
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURES, "report.json"])
    # exp 2: D(ε) shrinks as ε → 0 (checked on the recorded numbers, not on the verdict)
    devs = [f["deviation"] for f in report["results"][1]["data"]]
    assert devs[0] > devs[1] > devs[2]


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    a = run_paper(["quadrature", "phase"], out_dir=tmp_path / "a", seed=3)
    b = run_paper(["quadrature", "phase"], out_dir=tmp_path / "b", seed=3)
    c = run_paper(["phase"], out_dir=tmp_path / "c", seed=4)
    assert [r.data for r in a.results] == [r.data for r in b.results]
    assert a.results[1].data != c.results[0].data  # another seed, other clusters


def test_a_wrong_hessian_fails_the_robustness_verdict(tmp_path: Path, monkeypatch) -> None:
    from hjplug import math as hm

    real = hm.hessian_lse
    monkeypatch.setattr(hm, "hessian_lse", lambda x, W, b, eps: real(x, W, b, eps) * eps)
    from hjplug.paper import exp4_robustness
    from hjplug.paper._common import RunConfig

    result = exp4_robustness.run(RunConfig(quick=True, seed=0, out_dir=tmp_path))
    assert not result.passed and "autograd" in result.verdict.detail


def _err(capsys) -> str:
    out, err = capsys.readouterr()
    assert out.strip() == ""  # nothing started: no table, no progress bar
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def test_unwritable_output_path(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["paper", "phase", "-o", str(blocker)]) == 2
    assert "not a directory" in _err(capsys)
    assert main(["paper", "phase", "-o", str(blocker / "sub")]) == 2
    assert "cannot write to output directory" in _err(capsys)
    assert blocker.read_text() == "x"


def test_quick_with_a_list_and_unknown_names(tmp_path: Path, capsys) -> None:
    assert main(["paper", "--quick", "phase", "-o", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "--quick" in err and "hjplug paper --quick" in err and "6 folds" in err
    assert main(["paper", "nonsense", "-o", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "unknown experiment 'nonsense'" in err and "1 identities" in err
    assert main(["paper", "7", "-o", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []  # nothing written on bad input


def test_json_and_numbers_select_experiments(tmp_path: Path, capsys) -> None:
    assert main(["paper", "5", "quadrature", "--json", "-o", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["results"]] == ["quadrature", "phase"]
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_module_has_the_interface(name: str) -> None:
    import importlib

    from hjplug.paper.runner import MODULES

    mod = importlib.import_module(MODULES[name])
    assert name == mod.NAME and callable(mod.run) and callable(mod.verdict)
    assert EXPERIMENTS.index(name) + 1 == mod.NUMBER and mod.__doc__
