"""−inf in a float input is a removed key when the model uses that input as an attention mask —
added onto the q·kᵀ scores before the softmax, the condition of a masked_fill on them, SDPA's
attn_mask, or an nn module's *mask argument — whatever the input is called (`m`, `keep`,
`causal`); an input that is not so used is refused
with its name, also when it is called "mask"; NaN and +inf are refused everywhere."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hjplug
from hjplug.passes import NonFiniteInputError, capture

S, B, D, H = 6, 2, 16, 2


def _causal() -> torch.Tensor:
    return nn.Transformer.generate_square_subsequent_mask(S)  # 0 / −inf above the diagonal


class EagerM(nn.Module):  # softmax(q kᵀ/√d + m) v, the mask input called `m`
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.view(B, S, H, D // H).transpose(1, 2) for t in self.qkv(x).split(D, -1))
        z = q @ k.transpose(-1, -2) / math.sqrt(D // H) + m
        return torch.softmax(z, -1) @ v


class EagerFill(EagerM):  # the scores masked_fill'ed where `keep` is −inf
    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.view(B, S, H, D // H).transpose(1, 2) for t in self.qkv(x).split(D, -1))
        z = q @ k.transpose(-1, -2) / math.sqrt(D // H)
        return torch.softmax(z.masked_fill(keep.isneginf(), float("-inf")), -1) @ v


class MHACausal(nn.Module):  # SDPA's attn_mask, the input called `causal`
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(D, H, batch_first=True)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, attn_mask=causal, need_weights=False)[0]


class MaskNotAMask(nn.Module):  # named "mask", but added to the hidden states, not to scores
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(D, D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.lin(x + mask[:, :1])


def _x() -> torch.Tensor:
    return torch.randn(B, S, D, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make", [EagerM, EagerFill, MHACausal],
                         ids=["eager_m", "eager_fill_keep", "sdpa_causal"])
def test_mask_recognised_by_use_not_name(make) -> None:
    torch.manual_seed(0)
    model, x, mask = make().eval(), _x(), _causal()
    hj = hjplug.convert(model, (x, mask))
    assert [s.spec.kind for s in hj.steps.values()].count("attention") == 1
    with torch.no_grad():
        ref = model(x, mask)
        torch.testing.assert_close(hj(x, mask), ref, atol=1e-6, rtol=0)
        with hjplug.instrument(hj, stats=("entropy",)) as rec:
            hj(x, mask)
    assert torch.equal(rec["layers.0.attn.keys"][0, 0], torch.arange(1, S + 1))


def test_opaque_module_mask_argument() -> None:
    """symbolic_trace keeps nn.MultiheadAttention whole: its attn_mask argument is the use."""
    model, x, mask = MHACausal().eval(), _x(), _causal()
    got = capture(model, (x, mask), method="fx")
    assert got.method == "symbolic_trace"


def test_unused_as_mask_refused_whatever_its_name() -> None:
    model, x = MaskNotAMask().eval(), _x()
    with pytest.raises(NonFiniteInputError, match=r"argument 1 \(mask\).*attention mask"):
        hjplug.convert(model, (x, _causal()))


@pytest.mark.parametrize("make", [EagerM, MHACausal], ids=["eager_m", "sdpa_causal"])
def test_nan_and_pos_inf_refused_with_the_name(make) -> None:
    model, x = make().eval(), _x()
    name = "m" if make is EagerM else "causal"
    bad = _causal()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteInputError, match=rf"argument 1 \({name}\).* 1 NaN"):
        hjplug.convert(model, (x, bad))
    pos = _causal()
    pos[0, 0] = float("inf")
    with pytest.raises(NonFiniteInputError, match=rf"argument 1 \({name}\).*0 NaN and 16 Inf"):
        hjplug.convert(model, (x, pos))
    xi = x.clone()
    xi[0, 0, 0] = float("-inf")  # −inf in the hidden states: refused, said why
    with pytest.raises(NonFiniteInputError, match=r"argument 0 \(x\).*attention mask"):
        hjplug.convert(model, (xi, _causal()))
