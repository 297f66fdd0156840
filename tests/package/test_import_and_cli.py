"""`import hjplug` is light; the console script answers; errors are one clean line."""

from __future__ import annotations

import subprocess
import sys

import hjplug


def test_import_is_light_and_fast() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import hjplug; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'transformers', 'onnx', 'onnxruntime', 'onnxscript', "
        "'triton', 'matplotlib') if m in sys.modules]; print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dt, heavy = out.stdout.split(" ", 1)
    assert heavy.strip() == "[]", heavy
    assert float(dt) < 1.0


def test_lazy_attributes_resolve() -> None:
    assert hjplug.math.lse.__module__ == "hjplug.math.lse"
    assert callable(hjplug.verify)
    assert "math" in dir(hjplug)


def test_console_script_version_and_help() -> None:
    exe = [sys.executable, "-m", "hjplug"]
    out = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hjplug {hjplug.__version__}"
    out = subprocess.run(exe, capture_output=True, text=True)
    assert out.returncode == 2 and "verify" in out.stdout


def test_hjplug_errors_print_one_line_without_traceback(monkeypatch, capsys) -> None:
    from hjplug.cli import main
    from hjplug.errors import InvalidArgumentError

    def boom(seed=None, progress=None):
        raise InvalidArgumentError("seed", "an integer", "abc", where="hjplug verify")

    monkeypatch.setattr("hjplug.identities.verify", boom)
    assert main(["verify", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hjplug verify: error: hjplug verify: argument 'seed'")
    assert "Traceback" not in err
