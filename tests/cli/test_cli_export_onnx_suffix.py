"""`hjplug export-onnx MODEL m.txt` wrote ONNX into m.txt, a file `hjplug inspect` then does not
read as ONNX (it goes by the .onnx suffix). OUT must end in .onnx: refused before loading."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize("name", ["m.txt", "m", "m.json"])
def test_out_without_onnx_suffix_is_refused(name, tiny_config, tmp_path, capsys,
                                            refuse_load) -> None:
    out = tmp_path / name
    assert main(["export-onnx", str(tiny_config), str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(out) in lines[0] and ".onnx" in lines[0] and "e.g." in lines[0]
    assert not out.exists()
