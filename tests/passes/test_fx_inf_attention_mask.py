"""−inf in a float mask input is hjplug's removed-key convention (b_j = −∞): PyTorch's own
nn.Transformer.generate_square_subsequent_mask converts and matches the model, with and without
hjplug.instrument; NaN, +inf, and −inf in an input that is not a mask are still refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug
from hjplug.passes import NonFiniteInputError

S, B, D, H = 6, 2, 16, 2


class MHA(nn.Module):
    def __init__(self, need: bool) -> None:
        super().__init__()
        self.attn, self.need = nn.MultiheadAttention(D, H, batch_first=True), need

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, attn_mask=mask, need_weights=self.need)[0]


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(D, H, 32, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        return self.layer(x, src_mask=src_mask, is_causal=True)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(B, S, D, generator=torch.Generator().manual_seed(0))
    return x, nn.Transformer.generate_square_subsequent_mask(S)  # 0 / −inf above the diagonal


@pytest.mark.parametrize("make", [lambda: MHA(False), lambda: MHA(True), Layer],
                         ids=["mha_sdpa", "mha_weights", "encoder_layer"])
def test_neg_inf_mask_converts_with_parity(make) -> None:
    torch.manual_seed(0)
    model = make().eval()
    x, mask = _inputs()
    assert torch.isneginf(mask).any()
    hj = hjplug.convert(model, (x, mask))
    assert "attention" in {s.spec.kind for s in hj.steps.values()}
    with torch.no_grad():
        ref = model(x, mask)
        torch.testing.assert_close(hj(x, mask), ref, atol=1e-6, rtol=0)
        with hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
            out = hj(x, mask)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    keys = rec["layers.0.attn.keys"]
    assert torch.equal(keys[0, 0], torch.arange(1, S + 1))  # −inf keys removed, not atoms
    assert torch.isfinite(rec["layers.0.attn.entropy"]).all()


def test_nan_and_non_mask_inf_still_refused() -> None:
    model = MHA(False).eval()
    x, mask = _inputs()
    bad = mask.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteInputError, match="1 NaN"):
        hjplug.convert(model, (x, bad))
    pos = mask.clone()
    pos[0, 0] = float("inf")  # +inf is no removed key
    with pytest.raises(NonFiniteInputError, match="0 NaN and 16 Inf"):
        hjplug.convert(model, (x, pos))
    xi = x.clone()
    xi[0, 0, 0] = float("-inf")  # −inf in the hidden states: bad data, said why
    with pytest.raises(NonFiniteInputError, match=r"argument 0 \(x\).*only in float mask"):
        hjplug.convert(model, (xi, mask))
