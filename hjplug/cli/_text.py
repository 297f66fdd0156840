"""--text needs a tokenizer: refuse it, before any work, for a MODEL that has none.

hjplug.api.load_model tokenizes --text only for a model directory holding tokenizer.json or
vocab.txt (the bundled all-MiniLM-L6-v2 has one) whose model takes token ids (main input
input_ids); a config.json (random weights) or an .onnx file gets synthesised inputs, and the text
would be dropped without a word. check_text refuses what the path shows, before loading;
check_text_read what only the loaded model shows (e.g. a vision model with tokenizer files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hjplug.errors import HJPlugError

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.api import Loaded

__all__ = ["TOKENIZER_FILES", "TextArgumentError", "check_text", "check_text_read"]

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")  # what hjplug.api._tokenize looks for


class TextArgumentError(HJPlugError):
    """--text empty, or given for a MODEL that has no tokenizer to read it with."""


def check_text(model: str | None, text: str | None, *, onnx_ok: bool = False) -> None:
    """Raise TextArgumentError if `text` is empty (the loader would silently use its
    built-in sentence), or given while `model` has no tokenizer.

    `onnx_ok`: the command reads .onnx files (inspect); elsewhere an .onnx MODEL is left to the
    loader, whose refusal says which commands take one. A MODEL that is neither a path nor a
    cached model id is left to the loader too (it says so)."""
    if text is not None and not text.strip():
        raise TextArgumentError(
            f"--text is empty ({text!r}); expected a sentence to tokenize. Give one, or leave "
            "it out for the built-in sentence.")
    if text is None or model is None or not model.strip():
        return
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".onnx" and onnx_ok:
            _refuse(path, "an .onnx file (its graph is read as is, with no inputs)",
                    "pass the model directory it was exported from instead")
        elif path.suffix == ".json":
            beside = _has_tokenizer(path.parent)
            _refuse(path, "a config.json (random weights, synthesised inputs)",
                    f"pass the directory {path.parent} instead" if beside else
                    "pass a model directory with a tokenizer instead")
        return
    directory = path if path.is_dir() else _cached(model)
    if directory is not None and not _has_tokenizer(directory):
        _refuse(directory, f"a model directory without {' or '.join(TOKENIZER_FILES)} "
                "(synthesised inputs)", "add the tokenizer files, or pass another directory")


def check_text_read(text: str | None, loaded: Loaded) -> None:
    """Raise TextArgumentError if `text` was given but the loaded model's inputs were
    synthesised rather than tokenized from it (Loaded.text is None)."""
    from hjplug.api import Loaded

    if text is None or not isinstance(loaded, Loaded) or loaded.text is not None:
        return  # no text, it was read, or a stand-in loader (tests) that says nothing of it
    main = getattr(loaded.model, "main_input_name", None)
    reads = (f"takes {main} as its main input, not token ids" if main and main != "input_ids"
             else "was given synthesised inputs")
    raise TextArgumentError(
        f"--text needs a model that reads text (main input input_ids, with a tokenizer); "
        f"{loaded.name} from {loaded.source} {reads}, so the text would be ignored. Leave out "
        "--text, or pass a text model.")


def _refuse(model: Path, what: str, fix: str) -> None:
    raise TextArgumentError(
        f"--text needs a model with a tokenizer (a directory holding "
        f"{' or '.join(TOKENIZER_FILES)}, or no MODEL: the bundled all-MiniLM-L6-v2); "
        f"{model} is {what}, so the text would be ignored. Leave out --text, or {fix}.")


def _has_tokenizer(directory: Path) -> bool:
    return any((directory / name).is_file() for name in TOKENIZER_FILES)


def _cached(model_id: str) -> Path | None:
    """The local snapshot of a cached Hugging Face model id, or None (nothing downloaded)."""
    if model_id.count("/") > 1 or model_id.startswith((".", "~", "/")):
        return None
    from hjplug.cli._model_arg import offline

    offline()  # before huggingface_hub reads its settings: nothing is ever downloaded
    try:
        from huggingface_hub import snapshot_download

        cache = os.environ.get("HF_HUB_CACHE")
        return Path(snapshot_download(model_id, local_files_only=True, cache_dir=cache))
    except Exception:  # not cached, or not a valid id: the loader says so itself
        return None
