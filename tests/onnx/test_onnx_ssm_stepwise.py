"""A Mamba-like selective scan written step by step — Δ indexed per token *before* the
zero-order hold, exp(Δ[:, t] ⊗ A) — as many minimal implementations do. The FX pass reads it
as one SSM block; the ONNX pass must too (the exporter emits Gather(softplus, t) per step)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx_helpers import calls, check_rewritten
from onnx_models import export
from torch import nn

from hjplug.passes.onnx import inspect_onnx, rewrite


class StepwiseScan(nn.Module):
    def __init__(self, d: int = 4, n: int = 3) -> None:
        super().__init__()
        self.A_log = nn.Parameter(torch.randn(d, n))
        self.dt, self.B, self.C = nn.Linear(d, d), nn.Linear(d, n), nn.Linear(d, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        a = -torch.exp(self.A_log)
        dt, bb, cc = F.softplus(self.dt(x)), self.B(x), self.C(x)
        h = x.new_zeros(b, d, a.shape[1])
        ys = []
        for i in range(t):
            h = (torch.exp(dt[:, i, :, None] * a) * h
                 + dt[:, i, :, None] * bb[:, i, None, :] * x[:, i, :, None])
            ys.append((h * cc[:, i, None, :]).sum(-1))
        return torch.stack(ys, 1)


def test_stepwise_selective_scan_is_one_ssm_block(tmp_path) -> None:
    torch.manual_seed(0)
    src, dst = tmp_path / "scan.onnx", tmp_path / "scan.hj.onnx"
    export(StepwiseScan(), (torch.randn(2, 5, 4),), src)
    report = inspect_onnx(src)
    ssm = [b for b in report.blocks if str(b.kind) == "ssm"]
    assert len(ssm) == 1, [(m.node, m.reason) for m in report.near_misses]
    assert ssm[0].time_step == "Δ = softplus(·) per token and channel"
    rewrite(src, dst)
    assert [n.op_type for n in calls(dst)] == ["HJSSMStep"]
    check_rewritten(src, dst)
