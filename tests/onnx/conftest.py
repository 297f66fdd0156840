"""Fixtures for the ONNX-pass tests: models exported once per session, a rewrite helper."""

from __future__ import annotations

from pathlib import Path

import onnx_models as models
import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """exported(name) → path of the dynamo export of models' torch module `name` (cached)."""
    import torch

    out = tmp_path_factory.mktemp("exported")
    cache: dict[str, Path] = {}
    makers = {
        "attn_stack": lambda: (models.AttnStack(), (torch.randn(2, 5, 16),
                                                    torch.zeros(2, 1, 5, 5))),
        "mlp_head": lambda: (models.MLPHead(), (torch.randn(3, 8), torch.randn(3, 8))),
        "recurrent": lambda: (models.Recurrent(), (torch.randn(2, 5, 4),)),
    }

    def get(name: str) -> Path:
        if name not in cache:
            torch.manual_seed(0)
            module, args = makers[name]()
            models.export(module, args, out / f"{name}.onnx")
            cache[name] = out / f"{name}.onnx"
        return cache[name]

    return get
