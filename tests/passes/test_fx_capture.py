"""Capture, near-misses, rule counts and the errors of bad input."""

from __future__ import annotations

import hjzoo
import pytest
import torch
from torch import nn

import hjplug
from hjplug.passes import CaptureError, NonFiniteInputError, capture, recognize


class DataDependent(nn.Module):
    """Python control flow on tensor values: neither torch.export nor symbolic_trace can follow."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.Softplus()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        if y.sum() > 0:
            return self.act(y)
        return -y


class NearMisses(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = x + 0.1 * x**3  # x + g(x), g elementwise: not a residual block
        z = self.lin(y) + b  # independent operands
        return torch.softmax(z, dim=0)  # a softmax not fed by q·kᵀ: an LSE readout


def test_uncapturable_model_error_and_partial_report() -> None:
    model = DataDependent()
    before = hjzoo.checksum(model)
    x = torch.randn(3, 4)
    with pytest.raises(CaptureError) as info:
        hjplug.convert(model, (x,))
    msg = str(info.value)
    assert "DataDependent" in msg and "Try:" in msg
    assert hjzoo.checksum(model) == before and model.training  # mode restored too
    report = hjplug.inspect(model, (x,))
    assert report.capture == "failed" and "DataDependent" in report.notes[0]
    assert [b.path for b in report.blocks] == ["act"]  # what the module tree still shows


def test_nan_inputs_are_reported() -> None:
    model, (ids,) = hjzoo.plain("lse_mlp")[0], (None,)
    x = torch.randn(2, 10)
    x[0, 3] = float("nan")
    x[1, 1] = float("inf")
    with pytest.raises(NonFiniteInputError, match=r"1 NaN and 1 Inf"):
        hjplug.inspect(model, (x,))
    with pytest.raises(NonFiniteInputError, match="argument 0"):
        hjplug.convert(model, (x,))
    del ids


def test_near_misses_have_reasons() -> None:
    model = NearMisses().eval()
    report = hjplug.inspect(model, (torch.randn(3, 4), torch.randn(3, 4)))
    reasons = {m.reason for m in report.near_misses}
    assert "x + g(x) with no learned map in g (elementwise, not a residual block)" in reasons
    assert "add of independent operands (no skip path)" in reasons
    assert report.kinds() == {"lse": 1}
    assert report.counts == {"attention": 0, "recurrent": 0, "ssm": 0, "residual": 0, "lse": 1,
                             "activation": 0}


def test_symbolic_trace_capture_reads_the_same_blocks() -> None:
    model, inputs = hjzoo.plain("lse_mlp")
    traced = capture(model, inputs, method="fx")
    exported = capture(model, inputs, method="export")
    assert traced.method == "symbolic_trace" and exported.method == "torch.export"
    kinds = [[str(m.spec.kind) for m in recognize(c.graph_module).matches]
             for c in (traced, exported)]
    assert kinds[0] == kinds[1]


def test_convert_rejects_non_modules() -> None:
    with pytest.raises(hjplug.HJPlugError, match=r"nn\.Module"):
        hjplug.convert("not a model", None)  # type: ignore[arg-type]


class OddAttention(nn.Module):
    """softmax(sin(q kᵀ)) v: attention-shaped, with an op the attention rule cannot read."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)  # (B, T, 8) each
        w = torch.softmax(torch.sin(q @ k.transpose(-1, -2)), dim=-1)  # (B, T, T)
        return w @ v


def test_unsupported_op_inside_attention_is_explained() -> None:
    report = hjplug.inspect(OddAttention().eval(), (torch.randn(2, 5, 8),))
    assert "attention" not in report.kinds()
    (miss,) = [m for m in report.near_misses if m.rule == "attention"]
    assert "aten.sin" in miss.reason and "attention-like" in miss.reason
    assert report.kinds() == {"lse": 1}  # a softmax over scores: structural, kept


def test_missing_example_inputs_is_one_clear_error() -> None:
    model, _ = hjzoo.plain("lse_mlp")
    with pytest.raises(hjplug.HJPlugError, match="needs example_inputs"):
        hjplug.inspect(model)
    with pytest.raises(hjplug.HJPlugError, match="needs example_inputs"):
        hjplug.convert(model)
