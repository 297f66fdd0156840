"""The Hopf–Cole backward uses the precision mode its forward ran in (TF32 operands on Triton),
recorded when the forward runs: switching HJPLUG_KERNEL between forward and backward must not
change which mode the backward assumes."""

from __future__ import annotations

import pytest
import torch

from hjplug.kernels import _backward, api
from hjplug.kernels.reference.hopf_cole import hopf_cole as hopf_cole_twin


@pytest.mark.filterwarnings("ignore:.*HJPLUG_KERNEL=triton but tensors are on cpu")
def test_backward_mode_is_recorded_at_forward_time(monkeypatch) -> None:
    asked: list[bool] = []
    real = _backward.hopf_cole_tf32

    def spy(*a, **kw):
        asked.append(real(*a, **kw))
        return asked[-1]

    monkeypatch.setattr("hjplug.kernels.ops.hopf_cole_tf32", spy)
    monkeypatch.setattr(_backward, "hopf_cole_tf32", spy)
    g = torch.Generator().manual_seed(0)
    x, W, b = (torch.randn(*s, generator=g).requires_grad_() for s in ((4, 8), (6, 8), (6,)))
    monkeypatch.setenv("HJPLUG_KERNEL", "reference")
    r = api.hopf_cole(x, W, b, 0.5)
    assert asked == [False]  # asked once, at the forward (setup_context): exact fp32
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")  # changed before the backward runs
    (r.value.sum() + r.entropy.sum()).backward()
    assert asked == [False]  # not asked again
    o = hopf_cole_twin(x, W, b, 0.5)  # autograd through the twin itself
    want = torch.autograd.grad(o.value.sum() + o.entropy.sum(), (x, W, b))
    for got, w in zip((x.grad, W.grad, b.grad), want, strict=True):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-6)
