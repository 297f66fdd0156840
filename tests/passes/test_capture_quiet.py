"""A model that cannot be captured gets hjplug's one message, and nothing else on stderr (torch's
ShapeProp and fake-tensor logs used to print whole tracebacks before it)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug
from hjplug.passes.capture import CaptureError


class BadShapes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return torch.softmax(h @ h.transpose(-1, -2), -1)


def test_capture_failure_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CaptureError, match="could not capture BadShapes"):
        hjplug.convert(BadShapes(), (torch.randn(3),))  # 1-D input: transpose(-1, -2) fails
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]


def test_a_training_mode_model_is_captured_in_eval_mode_and_says_so() -> None:
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Softmax(-1))  # training mode
    rep = hjplug.inspect(m, (torch.randn(2, 4),))
    assert any("captured in eval mode" in n for n in rep.notes)
    assert m.training  # the user's model is left as it was
    rep_eval = hjplug.inspect(m.eval(), (torch.randn(2, 4),))
    assert not any("training mode" in n for n in rep_eval.notes)
