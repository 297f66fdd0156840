"""convert(..., dynamic=True) on a model that fixes a size (a bidirectional, multi-layer LSTM:
torch.export specialises its sequence length): the capture says which size was fixed, and a
call at another size is refused without suggesting the dynamic=True that was already used."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug


class BiLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 6)
        return self.head(self.rnn(x)[0])  # (B, T, 3)


def test_specialised_size_is_named_and_not_blamed_on_dynamic() -> None:
    from hjplug.passes import capture

    torch.manual_seed(0)
    model = BiLSTM().eval()
    x = torch.randn(2, 7, 6)
    notes = capture(model, (x,), dynamic=True).notes
    assert any("specialised" in n and "dim 1" in n and "7" in n for n in notes), notes
    hj = hjplug.convert(model, (x,), dynamic=True)
    with pytest.raises(hjplug.HJPlugError) as info:
        hj(torch.randn(2, 4, 6))
    msg = str(info.value)
    assert "specialised" in msg and "dim 1" in msg
    assert "or with hjplug.convert(..., dynamic=True)" not in msg  # it was converted so


def test_static_convert_still_suggests_dynamic() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.Softmax(-1)).eval()
    hj = hjplug.convert(model, (torch.randn(2, 3, 6),))
    with pytest.raises(hjplug.HJPlugError, match="dynamic=True"):
        hj(torch.randn(2, 5, 6))
