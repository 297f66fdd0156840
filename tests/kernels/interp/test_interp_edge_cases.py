"""Edge cases where the Triton kernels must behave as their reference twins: a NaN score makes
its row NaN (never an empty or a finite row, whatever the tiling), empty inputs give the empty
results, and the direct Triton entry point refuses what it cannot compute."""

from __future__ import annotations

import math
import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.errors import InvalidArgumentError  # noqa: E402
from hjplug.kernels.reference.entropy_sweep import entropy_sweep as sweep_ref  # noqa: E402
from hjplug.kernels.reference.hj_attention import hj_attention as attn_ref  # noqa: E402


@pytest.mark.parametrize("Sk", [31, 32, 40])  # masked tail tile, full tiles, split-K merge
@pytest.mark.parametrize("bias", [False, True])
def test_nan_score_gives_a_nan_row(Sk: int, bias: bool) -> None:
    from hjplug.kernels.triton import hj_attention as hja

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 2, 16, generator=g)
    k = torch.randn(1, 1, Sk, 16, generator=g)
    k[0, 0, 20, 0] = math.nan  # one key: every query sees it
    b = torch.zeros(1, 1, 1, Sk) if bias else None
    splits = 2 if Sk == 40 else None
    o, lse, ent, _, _ = hja.hj_attention_fwd(q, k, k, b, 0.25, False, -1, 0, splits=splits)
    ref = attn_ref(q, k, k, scale=0.25, bias=b, chunk=16)
    assert torch.isnan(ref.lse).all() and torch.isnan(ref.entropy).all()
    assert torch.isnan(lse).all() and torch.isnan(ent).all() and torch.isnan(o).all()


@pytest.mark.parametrize("method", ["kouter", "online"])
def test_nan_logit_gives_a_nan_entropy_in_the_sweep(method: str) -> None:
    from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd

    z = torch.randn(3, 37)
    z[1, 5] = math.nan
    eps = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    got = entropy_sweep_fwd(z, eps, method=method)
    ref = sweep_ref(z, eps)
    assert torch.isnan(got[1]).all() and torch.isnan(ref[1]).all()
    torch.testing.assert_close(got[[0, 2]], ref[[0, 2]], rtol=2e-5, atol=2e-5)


def test_empty_inputs_match_the_twins() -> None:
    from hjplug.kernels.triton import hj_attention as hja
    from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd
    from hjplug.kernels.triton.hopf_cole import hopf_cole_fwd

    q = torch.randn(1, 2, 4, 16)
    none = torch.randn(1, 1, 0, 16)
    o, lse, ent, tw, ti = hja.hj_attention_fwd(q, none, none, None, 0.25, False, -1, 2)
    assert o.shape == q.shape and bool((o == 0).all()) and torch.isneginf(lse).all()
    assert bool((ent == 0).all()) and bool((tw == 0).all()) and bool((ti == -1).all())
    o, lse, _, _, _ = hja.hj_attention_fwd(q[:, :, :0], torch.randn(1, 1, 300, 16),
                                           torch.randn(1, 1, 300, 16), None, 0.25, False, -1, 0)
    assert o.shape == (1, 2, 0, 16) and lse.shape == (1, 2, 0)
    val, grad, ent, tw, ti = hopf_cole_fwd(torch.randn(3, 16), torch.randn(0, 16),
                                           torch.randn(0), 0.5, 0)
    assert torch.isneginf(val).all() and bool((grad == 0).all())
    val, _, _, tw, ti = hopf_cole_fwd(torch.randn(0, 16), torch.randn(8, 16), torch.randn(8),
                                      0.5, 2)
    assert val.shape == (0,) and tw.shape == (0, 2) and ti.shape == (0, 2)
    eps = torch.tensor([1.0, 2.0], dtype=torch.float64)
    got = entropy_sweep_fwd(torch.randn(2, 0), eps)
    torch.testing.assert_close(got, sweep_ref(torch.randn(2, 0), eps))


def test_direct_entry_refuses_what_it_cannot_compute() -> None:
    from hjplug.kernels.triton import hj_attention as hja

    q = torch.randn(1, 1, 4, 16)
    with pytest.raises(InvalidArgumentError, match="head dim"):
        hja.hj_attention_fwd(q, q, torch.randn(1, 1, 4, 8), None, 0.25, False, -1, 0)
    with pytest.raises(InvalidArgumentError, match="topk"):
        hja.hj_attention_fwd(q, torch.randn(1, 1, 64, 16), torch.randn(1, 1, 64, 16), None,
                             0.25, False, -1, 40)
