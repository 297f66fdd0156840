"""Inputs of another dtype than the capture's: one HJPlugError naming the input, the captured and
the given dtype and what to do (torch's raw "mat1 and mat2 must have the same dtype" before)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug
from hjplug.errors import HJPlugError


def test_wrong_dtype_input_is_one_clear_message() -> None:
    m = nn.Sequential(nn.Linear(4, 4), nn.Softmax(-1)).eval()
    hj = hjplug.convert(m, (torch.randn(2, 4),))
    with pytest.raises(HJPlugError, match=r"float32 example input 0, got torch.float64; pass"):
        hj(torch.randn(2, 4, dtype=torch.float64))
    x = torch.randn(2, 4)
    torch.testing.assert_close(hj(x), m(x))  # the right dtype still runs
