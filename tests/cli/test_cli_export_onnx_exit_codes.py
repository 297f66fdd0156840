"""`hjplug export-onnx` exited 1 on bad input (a missing MODEL, an unusable OUT.onnx, --opset out
of range) where every other subcommand exits 2. Bad input now exits 2 like the others; 1 stays
for an export that fails at run time (as `inspect` exits 1 when capture fails)."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize(("argv", "expected"), [
    (["{t}/missing.json", "{t}/m.onnx"], "no such file"),
    (["{m}", "{t}/no/m.onnx"], "does not exist"),
    (["{m}", "{t}"], "is a directory"),
    (["{m}", "{t}/m.onnx", "--opset", "3"], "--opset"),
])
def test_bad_input_exits_2(argv, expected, tiny_config, tmp_path, capsys) -> None:
    argv = [a.format(t=tmp_path, m=tiny_config) for a in argv]
    assert main(["export-onnx", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("hjplug export-onnx: error:") and expected in lines[0]
    assert not (tmp_path / "m.onnx").exists()


def test_export_failure_exits_1(tiny_config, tmp_path, capsys, monkeypatch) -> None:
    from hjplug.integrations.onnxruntime import export as export_mod
    from hjplug.integrations.onnxruntime.records import ExportError

    def fail(*a: object, **k: object) -> None:
        raise ExportError("BertModel: the exporter failed at aten::foo; try --opset 17.")

    monkeypatch.setattr(export_mod, "export_onnx", fail)
    assert main(["export-onnx", str(tiny_config), str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("hjplug export-onnx: error: BertModel: the exporter failed at "
                           "aten::foo; try --opset 17.")
