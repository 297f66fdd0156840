"""`hjplug export-onnx MODEL OUT.onnx --check`: after writing, run the file in ONNX Runtime and the
PyTorch model on the export's inputs (hjplug.integrations.onnxruntime.check_parity) and print the
max errors per output; exit 1 when an output differs by more than the tolerance."""

from __future__ import annotations

import pytest

from hjplug.cli import main


def test_check_prints_the_max_errors(tiny_config, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(tiny_config), str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert out.is_file()
    assert "last_hidden_state" in text and "max |ORT − PyTorch|" in text
    assert "parity holds" in text


def test_failed_parity_exits_1(tiny_config, tmp_path, capsys, monkeypatch) -> None:
    import hjplug.integrations.onnxruntime.parity as parity
    from hjplug.integrations.onnxruntime.records import OrtParity

    monkeypatch.setattr(parity, "check_parity", lambda *a, **k: OrtParity(
        "CPUExecutionProvider", {"last_hidden_state": 0.5}, {"last_hidden_state": 0.25}))
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(tiny_config), str(out), "--check"]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "2.50e-01" in captured.out
    assert "parity fails" in captured.err and str(out) in captured.err


def test_check_is_opt_in(tiny_config, tmp_path, capsys, monkeypatch) -> None:
    import hjplug.integrations.onnxruntime.parity as parity

    monkeypatch.setattr(parity, "check_parity", lambda *a, **k: pytest.fail("checked"))
    assert main(["export-onnx", str(tiny_config), str(tmp_path / "m.onnx")]) == 0
