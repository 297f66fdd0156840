"""Output safety of `rewrite`: the input file (and its external data) is never modified, another
model's '<dst>.data' is never clobbered, and an unwritable directory is refused before any work
(tested by creating a file there, not by os.access, which passes for root on read-only /sys)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx
import onnx_models as models
import pytest
from onnx_helpers import check_rewritten

from hjplug.passes.onnx import OnnxFileError, rewrite


def _digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _external(path: Path, location: str) -> None:
    onnx.save(models.ms_attention(), str(path), save_as_external_data=True,
              all_tensors_to_one_file=True, location=location, size_threshold=0)


def test_rewrite_onto_its_input_is_refused(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(models.ms_attention(), str(src))
    before = _digest(src)
    (tmp_path / "link.onnx").symlink_to(src)
    os.link(src, tmp_path / "hard.onnx")
    for dst in (src, tmp_path / "." / "m.onnx", tmp_path / "link.onnx", tmp_path / "hard.onnx"):
        with pytest.raises(OnnxFileError, match="input") as info:
            rewrite(src, dst)
        assert str(src) in str(info.value) and "m.hj.onnx" in str(info.value)
    assert _digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.onnx", "link.onnx", "m.onnx"]


def test_rewrite_onto_its_input_with_external_data_is_refused(tmp_path):
    src = tmp_path / "m.onnx"
    _external(src, "m.onnx.data")
    data = tmp_path / "m.onnx.data"
    before = _digest(src, data)
    with pytest.raises(OnnxFileError, match="input"):
        rewrite(src, src)
    assert _digest(src, data) == before


def test_rewrite_never_writes_over_the_inputs_external_data(tmp_path):
    src = tmp_path / "m.onnx"
    _external(src, "out.onnx.data")  # the name rewrite(src, out.onnx) would write
    data = tmp_path / "out.onnx.data"
    before = _digest(src, data)
    with pytest.raises(OnnxFileError, match=r"out\.onnx\.data") as info:
        rewrite(src, tmp_path / "out.onnx")
    assert "input" in str(info.value)
    assert _digest(src, data) == before
    assert not (tmp_path / "out.onnx").exists()


def test_rewrite_keeps_another_models_external_data(tmp_path):
    src = tmp_path / "in" / "m.onnx"
    src.parent.mkdir()
    _external(src, "m.onnx.data")
    owner = tmp_path / "other.onnx"  # another model whose data file is named 'x.onnx.data'
    _external(owner, "x.onnx.data")
    data = tmp_path / "x.onnx.data"
    before = _digest(owner, data)
    with pytest.raises(OnnxFileError, match=r"x\.onnx\.data") as info:
        rewrite(src, tmp_path / "x.onnx")
    assert "another" in str(info.value)
    assert _digest(owner, data) == before
    assert not (tmp_path / "x.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "other.onnx", "x.onnx.data"]


def test_rewrite_may_replace_its_own_previous_output(tmp_path):
    src = tmp_path / "m.onnx"
    _external(src, "m.onnx.data")
    dst = tmp_path / "m.hj.onnx"
    rewrite(src, dst)
    rewrite(src, dst)  # dst's own '<dst>.data' from the first run: replaced, not refused
    check_rewritten(src, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.hj.onnx", "m.hj.onnx.data", "m.onnx", "m.onnx.data"]


def test_unwritable_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    ro = Path("/sys")
    if not ro.is_dir():
        pytest.skip("no /sys")
    try:  # only meaningful where creating a file there fails (sysfs: always, even for root)
        (ro / ".hjplug-probe").write_bytes(b"")
    except OSError:
        pass
    else:
        (ro / ".hjplug-probe").unlink()
        pytest.skip("/sys is writable here")
    src = tmp_path / "m.onnx"
    onnx.save(models.ms_attention(), str(src))
    import hjplug.passes.onnx.api as api

    def no_work(*a, **k):
        raise AssertionError("the input was loaded before the output directory was checked")

    monkeypatch.setattr(api, "load", no_work)
    with pytest.raises(OnnxFileError, match="not writable") as info:
        rewrite(src, ro / "m.hj.onnx")
    assert "/sys" in str(info.value) and "another path" in str(info.value)


def test_rewrite_onto_the_inputs_external_data_file_is_refused(tmp_path):
    src = tmp_path / "m.onnx"
    _external(src, "m.weights")
    data = tmp_path / "m.weights"
    before = _digest(src, data)
    with pytest.raises(OnnxFileError, match="input") as info:
        rewrite(src, data)
    assert "m.weights" in str(info.value)
    assert _digest(src, data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.weights"]
