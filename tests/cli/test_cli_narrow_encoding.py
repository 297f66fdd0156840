"""A terminal or pipe whose encoding is not UTF-8 (PYTHONIOENCODING=ascii / latin-1): the
tables, help and error messages print with '?' for what the encoding lacks, never a
UnicodeEncodeError traceback (verify's table holds ε, ∇, §, —)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(argv: list[str], encoding: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": encoding}
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "hjplug", *argv], capture_output=True,
                          env=env, timeout=300, check=False)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_verify_table_in_narrow_encoding(encoding: str) -> None:
    proc = _run(["verify", "--seed", "3"], encoding)
    err = proc.stderr.decode(encoding, errors="strict")
    assert proc.returncode == 0, err
    out = proc.stdout.decode(encoding, errors="strict")  # every byte is in the encoding
    assert "UnicodeEncodeError" not in err and "Traceback" not in err
    assert "hjplug verify" in out and "pass" in out and "fail" not in out.split("verdict")[-1]


def test_help_and_errors_in_ascii() -> None:
    helped = _run(["verify", "--help"], "ascii")
    assert helped.returncode == 0, helped.stderr.decode()
    assert "paper-notes ?1" in helped.stdout.decode("ascii")  # § replaced, not a traceback
    bad = _run(["inspect", "/no/such/model/dir"], "ascii")
    err = bad.stderr.decode("ascii")
    assert bad.returncode == 2 and "Traceback" not in err
    assert err.startswith("hjplug inspect: error: /no/such/model/dir")
