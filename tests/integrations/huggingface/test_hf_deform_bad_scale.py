"""λ for deform: one message for anything that is not a finite λ ≥ 0 (or one per head) — None,
a bool, a string, NaN, a negative, a 2-D tensor — from both entry points; a 0-d or 1-D tensor
counts as numbers."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import TINY

import hjplug
import hjplug.integrations.huggingface as hf
from hjplug.errors import InvalidArgumentError


@pytest.mark.parametrize("bad", [None, True, "x", float("nan"), -1.0, torch.zeros(2, 2)],
                         ids=["none", "bool", "str", "nan", "negative", "2d-tensor"])
@pytest.mark.parametrize("entry", ["hf", "instrument"])
def test_bad_scale_is_one_clear_error(bad: object, entry: str) -> None:
    ref, _ = TINY["llama"]("sdpa")
    model = hf.enable(ref)
    fn = hf.deform if entry == "hf" else hjplug.instrument.deform
    with pytest.raises(InvalidArgumentError, match="finite λ ≥ 0"), fn(model, bad):  # type: ignore[arg-type]
        pass
    assert hf.specs(model)[0].epsilon == hf.specs(hf.enable(ref))[0].epsilon  # nothing changed


def test_tensor_scales_count_as_numbers() -> None:
    ref, _ = TINY["llama"]("sdpa")
    model = hf.enable(ref)
    eps0 = hf.specs(model)[0].epsilon
    with hf.deform(model, torch.tensor(0.5)):
        assert hf.specs(model)[0].epsilon == pytest.approx([0.5 * e for e in eps0])
    heads = len(eps0)
    lam = torch.linspace(0.5, 2.0, heads)
    with hf.deform(model, lam, layers=[0]):
        assert hf.specs(model)[0].epsilon == pytest.approx(
            [float(x) * e for x, e in zip(lam, eps0, strict=True)])
    assert hf.specs(model)[0].epsilon == eps0
