"""The GPU scripts run end to end on CPU (GPU_CHECK_DRY=1: interpreter, tiny sizes), so a lent
device's few minutes are not spent on a broken script: exit 0 with every check passed, JSON
written atomically to $OUT, CUDA-only SDPA baselines noted rather than counted as errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("script", "sections", "out", "timed"), [
    ("gpu_check.py", "time_decode", "gpu_check.json", True),  # SDPA baseline: a note on CPU
    ("gpu_backward.py", "correctness_far_lse", "gpu_backward.json", False),
    ("gpu_integration.py", "probe_hopf_cole", "gpu_integration.json", True),
])
def test_gpu_script_dry_run(script: str, sections: str, out: str, timed: bool,
                            tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_DRY": "1", "GPU_SECTIONS": sections, "OUT": str(tmp_path),
           "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script)], env=env,
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / out).read_text())
    assert not res["errors"], res["errors"]
    assert all(c["ok"] for c in res["checks"])
    assert bool(res["timings"]) == timed
    assert not list(tmp_path.glob("*.part"))
