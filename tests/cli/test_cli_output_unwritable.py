"""`check_output` (shared by stats --save, sweep --plot, report -o, export-onnx OUT) probes the
destination directory by creating a file there, instead of os.access (which says yes to root
everywhere, e.g. on read-only /sys): an unwritable output is refused before any work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from hjplug.cli import main
from hjplug.cli._model_arg import OutputPathError, check_output


@pytest.fixture
def unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A directory no file can be created in, with os.access saying yes to it (as it does for
    root): read-only /sys where this runs as root, else a mode-0555 directory."""
    try:
        fd, probe = tempfile.mkstemp(dir="/sys")
    except OSError:
        d = Path("/sys")
    else:  # /sys writable here: fall back on a read-only directory (not for root)
        os.close(fd)
        os.unlink(probe)
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        if os.geteuid() == 0:
            pytest.skip("root on a writable /sys: no unwritable directory to test with")
    monkeypatch.setattr(os, "access", lambda *_a, **_k: True)
    yield d
    if d != Path("/sys"):
        d.chmod(0o755)


@pytest.fixture
def no_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command starts loading the model (the path must be refused first)."""
    import hjplug.api

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the output path was refused")

    monkeypatch.setattr(hjplug.api, "load_model", boom)


def test_check_output_probes_the_directory(unwritable: Path) -> None:
    with pytest.raises(OutputPathError, match="is not writable") as caught:
        check_output(unwritable / "x.json", "some-model", "--save", "stats.json")
    assert str(unwritable) in str(caught.value)
    assert not [p for p in unwritable.iterdir() if p.name.startswith(".x.json.")]


@pytest.mark.parametrize("argv", [
    ["stats", "--save", "{d}/x.json"],
    ["sweep", "--no-folds", "--plot", "{d}/sweep.png"],
])
def test_commands_refuse_an_unwritable_output_before_work(argv, unwritable: Path, no_load,
                                                          capsys) -> None:
    args = [a.format(d=unwritable) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hjplug {argv[0]}: error: {unwritable}/") and "not writable" in err
