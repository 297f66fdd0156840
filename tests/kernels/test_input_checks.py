"""The kernels' input checks: one InvalidArgumentError naming the argument, never a raw
ZeroDivisionError / TypeError, and a mismatch the Triton kernel would only meet at compile time
caught before dispatch."""

from __future__ import annotations

import pytest
import torch

from hjplug.errors import InvalidArgumentError
from hjplug.kernels import entropy_sweep, hj_attention, hopf_cole
from hjplug.kernels._checks import check_eps_values


def test_sweep_checks() -> None:
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 1, 5, 8)
    with pytest.raises(InvalidArgumentError, match="only q"):
        entropy_sweep(eps=[1.0], q=q)
    with pytest.raises(InvalidArgumentError, match="only k"):
        entropy_sweep(eps=[1.0], k=k)
    with pytest.raises(InvalidArgumentError, match="Hk ≥ 1"):
        entropy_sweep(eps=[1.0], q=q, k=torch.randn(1, 0, 5, 8))
    with pytest.raises(InvalidArgumentError, match="one dtype"):
        entropy_sweep(eps=[1.0], q=q, k=k.half())
    with pytest.raises(InvalidArgumentError, match="floating-point"):
        entropy_sweep(eps=[1.0], q=q.long(), k=k.long())
    assert entropy_sweep(eps=[1.0, 2.0], q=q, k=k).shape == (1, 2, 4, 2)


def test_eps_values() -> None:
    assert check_eps_values(2.0) == [2.0]  # one ε
    assert check_eps_values(torch.tensor([0.5, 1.0])) == [0.5, 1.0]
    for bad in ("25", [1.0, "2"], [True], [], [0.0], [float("nan")], None):
        with pytest.raises(InvalidArgumentError, match="eps"):
            check_eps_values(bad)  # type: ignore[arg-type]


def test_attention_needs_a_head() -> None:
    z = torch.randn(1, 0, 4, 8)
    with pytest.raises(InvalidArgumentError, match="H ≥ 1"):
        hj_attention(z, z, z)


def test_hopf_cole_names_b() -> None:
    x, W = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(InvalidArgumentError, match="argument 'b'"):
        hopf_cole(x, W, torch.arange(5))
    with pytest.raises(InvalidArgumentError, match="argument 'b'"):
        hopf_cole(x, W, torch.randn(5, device="meta"))


def test_traced_eps_tensor_is_refused_clearly() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = torch.tensor([1.0, 2.0])
    with pytest.raises(InvalidArgumentError, match="concrete values"):
        check_eps_values(fake)
