"""ε / scale arguments of the kernels: a bool or a non-positive / non-finite number is refused
with one message naming the argument (hopf_cole's hint speaks of ε, not of a scale)."""

from __future__ import annotations

import pytest
import torch

from hjplug.errors import InvalidArgumentError
from hjplug.kernels import hj_attention, hopf_cole


@pytest.mark.parametrize("eps", [True, 0.0, -1.0, float("inf"), float("nan"), "1"])
def test_hopf_cole_eps(eps: object) -> None:
    x, W, b = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)
    with pytest.raises(InvalidArgumentError, match="'eps'") as err:
        hopf_cole(x, W, b, eps)  # type: ignore[arg-type]
    assert "scale" not in str(err.value)


@pytest.mark.parametrize("scale", [True, 0.0, -2.0, float("nan")])
def test_attention_scale(scale: object) -> None:
    q = torch.randn(1, 2, 3, 8)
    with pytest.raises(InvalidArgumentError, match="'scale'"):
        hj_attention(q, q, q, scale=scale)  # type: ignore[arg-type]


def test_one_element_tensor_eps_is_a_number() -> None:
    x, W, b = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)
    torch.testing.assert_close(hopf_cole(x, W, b, torch.tensor(0.5)).value,
                               hopf_cole(x, W, b, 0.5).value)
