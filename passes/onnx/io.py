"""Load an .onnx file with clear errors, and write one atomically (temp file + os.replace)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import external_data_helper as ext

from hjplug.errors import HJPlugError
from hjplug.file_mode import match_plain_write

__all__ = ["MIN_OPSET", "Loaded", "OnnxFileError", "check_destination", "load", "save_atomic"]

MIN_OPSET = 7  # the oldest default-domain opset ONNX Runtime runs
_PROTO_LIMIT = 2**31 - 1  # protobuf's 2 GiB limit: larger models need external data


class OnnxFileError(HJPlugError, ValueError):
    """An .onnx file (or an output path) hjplug cannot use: says what, where and what to do."""


@dataclass(frozen=True)
class Loaded:
    """A loaded model (external data pulled in) and where it came from."""

    model: onnx.ModelProto
    path: Path
    external: bool  # the file kept (some) tensors in external data files
    opset: int


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]


def load(path: str | os.PathLike) -> Loaded:
    """Read and validate `path`; every failure is one `OnnxFileError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise OnnxFileError(f"{p}: no such file; expected an .onnx model file. Check the path.")
    if p.is_dir():
        raise OnnxFileError(f"{p}: is a directory; expected an .onnx model file inside it.")
    size = p.stat().st_size
    if size == 0:
        raise OnnxFileError(f"{p}: the file is empty (0 bytes); expected a serialized ONNX "
                            "ModelProto. Re-export or re-download the model.")
    try:
        model = onnx.load_model(str(p), load_external_data=False)
    except Exception as err:  # protobuf DecodeError and friends
        raise OnnxFileError(
            f"{p}: not a readable ONNX model ({size} bytes; protobuf parsing failed: {err}). "
            "Expected a serialized ONNX ModelProto; the file may be truncated or corrupt: "
            "re-export or re-download it.") from err
    if not model.HasField("graph") or model.ir_version == 0:
        raise OnnxFileError(
            f"{p}: parsed, but holds no ONNX model (ir_version {model.ir_version}, "
            f"{len(model.graph.node)} nodes); expected a serialized ONNX ModelProto. The file "
            "may be truncated, or not an ONNX file.")
    missing = [(t.name, loc) for t in _external_tensors(model)
               if not (p.parent / (loc := _location(t))).is_file()]
    if missing:
        files = sorted({loc for _, loc in missing})
        names = ", ".join(n for n, _ in missing[:3]) + (" …" if len(missing) > 3 else "")
        raise OnnxFileError(
            f"{p}: external data file(s) {files} not found in {p.parent} (needed by "
            f"{len(missing)} tensor(s): {names}). Expected them next to the model, as written "
            "by the exporter: copy them there, or re-export with the weights inside the file.")
    external = bool(_external_tensors(model))
    if external:
        try:
            ext.load_external_data_for_model(model, str(p.parent))
        except Exception as err:
            raise OnnxFileError(f"{p}: reading its external data in {p.parent} failed: {err}. "
                                "The data file may be truncated: re-export the model.") from err
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None and any((n.domain or "") in ("", "ai.onnx") for n in model.graph.node):
        raise OnnxFileError(f"{p}: uses standard ONNX ops but imports no default-domain opset; "
                            "the model is malformed: re-export it.")
    if opset is not None and opset < MIN_OPSET:
        raise OnnxFileError(
            f"{p}: default-domain opset {opset} is too old; expected opset ≥ {MIN_OPSET} (the "
            "oldest ONNX Runtime runs). Upgrade it with onnx.version_converter.convert_version"
            "(model, 17), or re-export with a newer opset.")
    try:
        if model.ByteSize() < _PROTO_LIMIT:
            onnx.checker.check_model(model)
        else:
            onnx.checker.check_model(str(p))
    except Exception as err:
        raise OnnxFileError(f"{p}: not a valid ONNX model (onnx.checker: {err}). The file may "
                            "be truncated or written by a faulty exporter: re-export it.") from err
    return Loaded(model, p, external, opset or 0)


def _location(t: onnx.TensorProto) -> str:
    return next((e.value for e in t.external_data if e.key == "location"), "")


def check_destination(dst: str | os.PathLike) -> Path:
    """The output path, checked before any work: its directory exists and is writable."""
    d = Path(dst)
    if d.is_dir():
        raise OnnxFileError(f"{d}: is a directory; expected the path of the .onnx file to "
                            f"write, e.g. {d / 'model.hj.onnx'}.")
    parent = d.parent if str(d.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OnnxFileError(f"{d}: {parent} is a file, not a directory; expected an existing "
                            "directory. Choose another path.")
    if not parent.is_dir():
        raise OnnxFileError(f"{d}: the output directory {parent} does not exist; expected an "
                            "existing directory. Create it first (mkdir -p) or choose another "
                            "path.")
    if not os.access(parent, os.W_OK):
        raise OnnxFileError(f"{d}: the output directory {parent} is not writable; choose "
                            "another path.")
    return d


def save_atomic(model: onnx.ModelProto, dst: str | os.PathLike, *,
                external: bool | None = None) -> None:
    """Write `model` to `dst` via a temporary file in the same directory and `os.replace`, so
    nothing half-written is ever left at `dst`. With `external` (default: only when the model
    exceeds protobuf's 2 GiB), tensors ≥ 1 kB go to '<dst name>.data' beside it, written the
    same way."""
    d = check_destination(dst)
    parent = d.parent if str(d.parent) else Path(".")
    temps: list[str] = []
    try:
        data_tmp = None
        if external is None:
            external = model.ByteSize() >= _PROTO_LIMIT
        if external:
            model = _copy(model)
            fd, data_tmp = tempfile.mkstemp(dir=parent, prefix=f".{d.name}.", suffix=".data.tmp")
            os.close(fd)
            temps.append(data_tmp)
            os.unlink(data_tmp)  # written by write_external_data_tensors
            ext.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                               location=Path(data_tmp).name, size_threshold=1024)
            model = ext.write_external_data_tensors(model, str(parent))
            for t in _external_tensors(model):
                for e in t.external_data:
                    if e.key == "location":
                        e.value = f"{d.name}.data"
            if not os.path.exists(data_tmp):  # every tensor was small enough to stay inline
                data_tmp = None
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{d.name}.", suffix=".tmp")
        temps.append(tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        if data_tmp is not None:
            match_plain_write(data_tmp, parent / f"{d.name}.data")
            os.replace(data_tmp, parent / f"{d.name}.data")
        match_plain_write(tmp, d)
        os.replace(tmp, d)
    except OSError as err:
        raise OnnxFileError(f"{d}: writing failed ({err}); no partial file was left (what was "
                            "at that path before, if anything, is unchanged).") from err
    finally:
        for leftover in temps:
            if os.path.exists(leftover):
                os.unlink(leftover)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
