"""Recorder.save into a directory or under a plain file: one HJPlugError saying what to do, and
no file or temporary left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hjplug.errors import HJPlugError
from hjplug.instrument.recorder import Recorder


def _recorder() -> Recorder:
    rec = Recorder(("entropy",), 0, "test")
    rec.put("layers.0.attn", "blk", "attention", {"entropy": torch.ones(1, 2, 3)})
    return rec


def test_save_into_a_directory(tmp_path: Path) -> None:
    with pytest.raises(HJPlugError, match="is a directory; give a file path"):
        _recorder().save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_save_under_a_plain_file(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(HJPlugError, match="cannot write"):
        _recorder().save(blocker / "stats.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_save_still_writes(tmp_path: Path) -> None:
    out = _recorder().save(tmp_path / "s.json")
    assert out.exists() and out.read_text().startswith("{")
