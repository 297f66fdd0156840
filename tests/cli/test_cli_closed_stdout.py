"""`hjplug verify | head -1` and the like: a reader that closes the pipe early is not a failure.
Exit 0 (as for `--json | head`), not rich's exit 1, which `verify` documents as "an identity
failed", and no error text."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["verify", "--seed", "1"], ["verify", "--seed", "1", "--json"]])
def test_closed_stdout_exits_0(argv) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hjplug", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the first line: the reader has gone (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
