"""The MODEL argument shared by inspect, stats, sweep, report and export-onnx.

MODEL is a local Hugging Face model directory, a model id in the local HF cache, or a config.json
(random weights); omitted (where optional), the bundled all-MiniLM-L6-v2. Nothing is downloaded
(HF_HUB_OFFLINE=1 unless set). A missing path or an unloadable model raises ModelLoadError, which
the `hjplug` entry point prints as one line (exit 2); export-onnx catches it itself (exit 1).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.api import Loaded

__all__ = ["MODEL_HELP", "TEXT_HELP", "add_model_argument", "add_text_argument", "load",
           "offline"]

MODEL_HELP = ("model directory, cached model id, or config.json (default: bundled "
              "all-MiniLM-L6-v2)")
TEXT_HELP = "sentence to tokenize (models with a tokenizer)"


def add_model_argument(p: argparse.ArgumentParser, help: str = MODEL_HELP,
                       required: bool = False) -> None:
    """The positional MODEL (optional unless `required`: None → the bundled model)."""
    if required:
        p.add_argument("model", help=help)
    else:
        p.add_argument("model", nargs="?", default=None, help=help)


def add_text_argument(p: argparse.ArgumentParser, help: str = TEXT_HELP) -> None:
    p.add_argument("--text", default=None, help=help)


def offline() -> None:
    """Never download: HF_HUB_OFFLINE=1 unless the user set it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load(model: str | None, text: str | None = None) -> Loaded:
    """hjplug.api.load_model(model, text=text), offline (looked up at call time, so a patched
    hjplug.api.load_model is used)."""
    offline()
    from hjplug import api

    return api.load_model(model, text=text)
