"""Load an .onnx file with clear errors, and write one atomically (temp file + os.replace)."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import external_data_helper as ext

from hjplug.errors import HJPlugError
from hjplug.file_mode import match_plain_write, writable_error
from hjplug.passes.onnx.calls import missing_function_message
from hjplug.passes.onnx.opsets import MIN_OPSET, ort_newest_opset

__all__ = ["MIN_OPSET", "Loaded", "OnnxFileError", "check_data_destination", "check_destination",
           "check_not_input", "check_runnable_opset", "full_check_error", "load", "save_atomic"]

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
    data_files: tuple[Path, ...] = ()  # those external data files


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
    _check_locations(p, model)
    missing = [(t.name, loc) for t in _external_tensors(model)
               if not (p.parent / (loc := _location(t))).is_file()]
    if missing:
        files = sorted({loc for _, loc in missing})
        names = ", ".join(n for n, _ in missing[:3]) + (" …" if len(missing) > 3 else "")
        raise OnnxFileError(
            f"{p}: external data file(s) {files} not found in {p.parent} (needed by "
            f"{len(missing)} tensor(s): {names}). Expected them next to the model, as written "
            "by the exporter: copy them there, or re-export with the weights inside the file.")
    data_files = tuple(sorted({p.parent / _location(t) for t in _external_tensors(model)}))
    external = bool(data_files)
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
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and opset > newest:
        raise OnnxFileError(
            f"{p}: default-domain opset {opset} is newer than any the installed onnx "
            f"{onnx.__version__} defines (≤ {newest}), so neither onnx.checker nor ONNX Runtime "
            f"can read its ops; expected opset {MIN_OPSET}…{newest}. Re-export the model with "
            "an opset in that range (or convert it: onnx.version_converter.convert_version), "
            "or upgrade onnx / onnxruntime if the opset is real.")
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
        unknown = _unknown_op(model, str(err))
        if unknown:
            raise OnnxFileError(f"{p}: {unknown}") from err
        why = " ".join(str(err).split())  # one line
        raise OnnxFileError(f"{p}: not a valid ONNX model (onnx.checker: {why}). The file may "
                            "be truncated or written by a faulty exporter: re-export it.") from err
    if (no_function := missing_function_message(model, p)) is not None:
        raise OnnxFileError(no_function)  # onnx.checker checks no op of the hjplug domain
    return Loaded(model, p, external, opset or 0, data_files)


def _check_locations(p: Path, model: onnx.ModelProto) -> None:
    """Refuse external data stored outside the model's directory (an absolute location, or one
    that leaves it through '..'): onnx will not read it, and hjplug reads only files beside the
    model."""
    base = os.path.normpath(p.parent.absolute())
    for t in _external_tensors(model):
        loc = _location(t)  # lexically inside (a symlinked data file is onnx's call)
        inside = not os.path.isabs(loc) and os.path.commonpath(
            [base, os.path.normpath(os.path.join(base, loc))]) == base
        if not inside:
            raise OnnxFileError(
                f"{p}: tensor {t.name!r} keeps its external data at {loc!r}, outside the "
                f"model's directory {p.parent}; expected a relative path to a file beside the "
                "model (as exporters write it). Move the data file next to the model and set "
                "that relative location, or re-export the model.")


def check_runnable_opset(loaded: Loaded) -> None:
    """Refuse (before anything is written) a model whose default-domain opset the installed
    ONNX Runtime cannot load, naming the newest opset it runs (`opsets.ort_newest_opset`: read
    from ONNX Runtime's own loader check once per process)."""
    newest = ort_newest_opset()
    if newest is None or loaded.opset <= newest:
        return
    import onnxruntime as ort  # type: ignore[import-untyped]

    raise OnnxFileError(
        f"{loaded.path}: default-domain opset {loaded.opset} is not supported by the installed "
        f"onnxruntime {ort.__version__} (it runs opsets ≤ {newest}): it could not run the "
        "rewritten file, so nothing was written. Convert the model to a supported opset "
        "(onnx.version_converter.convert_version) or upgrade onnxruntime.")


def full_check_error(model: onnx.ModelProto) -> str | None:
    """onnx.checker's full check (with strict shape inference) of `model` as one line, or None
    when it passes (or the model is too large to check in memory)."""
    if model.ByteSize() >= _PROTO_LIMIT:
        return None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:
        return " ".join(str(err).split())
    return None


def _unknown_op(model: onnx.ModelProto, checker_error: str) -> str | None:
    """The explanation of onnx.checker's "No Op registered for X with domain_version of N", or
    None for any other error."""
    found = re.search(r"No Op registered for (\S+) with domain_version of (\d+)", checker_error)
    if not found:
        return None
    op, version = found.group(1), found.group(2)
    nodes = [(i, n) for i, n in enumerate(model.graph.node) if n.op_type == op]
    where = ", ".join(f"'{n.name}' (node {i})" if n.name else f"node {i}" for i, n in nodes[:3])
    domain = (nodes[0][1].domain if nodes else "") or "the default ONNX domain"
    return (f"op {op} (used by {where or 'a node'}) is not defined by {domain} at the "
            f"model's opset {version}; expected only ops of that opset (or of a custom "
            "domain the model imports). Convert the model to an opset that has it "
            "(onnx.version_converter.convert_version), or re-export it with a newer opset.")


def _location(t: onnx.TensorProto) -> str:
    return next((e.value for e in t.external_data if e.key == "location"), "")


def _same(a: Path, b: Path) -> bool:
    """`a` and `b` name one file (same resolved path, or links to one inode)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _suggestion(src: Path) -> Path:
    name = src.name.removesuffix(".onnx")
    return src.with_name(f"{name}.hj.onnx")


def check_destination(dst: str | os.PathLike, src: str | os.PathLike | None = None) -> Path:
    """The output path, checked before any work: its directory exists and a file can be created
    in it (a real probe: os.access says yes to root even on read-only /sys), and it is not the
    input `src` (the input is never modified)."""
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
    if src is not None:
        check_not_input(d, Path(src), (Path(src),))
    if (err := writable_error(parent, d.name)) is not None:
        raise OnnxFileError(f"{d}: the output directory {parent} is not writable (creating a "
                            f"file there failed: {err.strerror or err}); choose another "
                            "path.") from err
    return d


def check_not_input(dst: Path, src: Path, inputs: tuple[Path, ...]) -> None:
    """Refuse an output path that is one of `inputs` (the model `src` or its external data
    files): hjplug never modifies its input."""
    for p in inputs:
        if dst.exists() and p.exists() and _same(dst, p):
            what = "the input model" if p == src else f"the external data file of {src}"
            raise OnnxFileError(f"{dst}: is {what} ({p}); hjplug never modifies its input. "
                                f"Write the result elsewhere, e.g. {_suggestion(src)}.")


def _data_locations(model_path: Path) -> set[str]:
    """The external data locations the .onnx file at `model_path` refers to (none if unreadable)."""
    try:
        m = onnx.load_model(str(model_path), load_external_data=False)
    except Exception:  # not a model (or unreadable): it owns no data file
        return set()
    return {os.path.normpath(_location(t)) for t in _external_tensors(m)}


def check_data_destination(dst: str | os.PathLike, protect: tuple[Path, ...] = ()) -> Path:
    """'<dst>.data', where external data of `dst` would go, checked before it is written: it must
    not be one of `protect` (the input's data files) nor another model's data file (an existing
    one is replaced only when the existing `dst` itself refers to it)."""
    d = Path(dst)
    data = d.with_name(f"{d.name}.data")
    if not data.exists():
        return data
    if any(p.exists() and _same(data, p) for p in protect):
        raise OnnxFileError(f"{d}: its external data would go to {data}, the input model's own "
                            "data file; hjplug never modifies its input. Choose another output "
                            "name (the data file is '<output name>.data').")
    if not d.exists() or data.name not in _data_locations(d):
        raise OnnxFileError(f"{d}: its external data would go to {data}, which exists and is "
                            f"not {d.name}'s own (it may belong to another model); nothing was "
                            "written. Move or remove that file, or choose another output name.")
    return data


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
            check_data_destination(d)
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
