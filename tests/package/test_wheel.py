"""The wheel ships one import root: hjplug (with hjplug.passes/kernels/integrations inside)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if shutil.which("git") is None:  # pragma: no cover
        pytest.skip("git is needed to copy the tracked tree")
    src = tmp_path_factory.mktemp("src")
    # Build from a copy of the committed + working files (keeps build/ and egg-info out of ROOT).
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()
    for rel in files:
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = ROOT / rel
        if source.is_symlink():
            target.symlink_to(source.readlink())
        elif source.is_file():
            shutil.copy2(source, target)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
         str(src)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("hjplug-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_wheel_has_a_single_import_root(wheel_names: list[str]) -> None:
    roots = {name.split("/", 1)[0] for name in wheel_names if not name.startswith("hjplug-")}
    assert roots == {"hjplug"}, roots
    for forbidden in ("passes/", "kernels/", "integrations/"):
        assert not any(name.startswith(forbidden) for name in wheel_names)


def test_wheel_contains_the_subpackages_under_hjplug(wheel_names: list[str]) -> None:
    for sub in ("passes", "kernels", "integrations", "math", "identities", "cli"):
        assert f"hjplug/{sub}/__init__.py" in wheel_names, sub
    entry = [n for n in wheel_names if n.endswith("entry_points.txt")]
    assert entry, "console script missing"
