"""The split-K merge kernel (kernels/triton/split_merge.py) under TRITON_INTERPRET=1 against its
reference twin, and the twin against a direct fp64 evaluation over the unsplit keys."""

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

from hjplug.kernels.reference.split_merge import merge_splits as merge_ref  # noqa: E402


def _partials(S: int, rows: tuple[int, ...], D: int, n_keys: int = 24, seed: int = 0):
    """Split n_keys scores per row into S disjoint chunks; some chunks empty (masked keys), and
    the first row fully masked. Returns the partials and the unsplit fp64 truth."""
    g = torch.Generator().manual_seed(seed)
    R = int(torch.tensor(rows).prod())
    s = torch.randn(R, n_keys, generator=g, dtype=torch.float64) * 3  # scores
    v = torch.randn(R, n_keys, D, generator=g, dtype=torch.float64)
    keep = torch.rand(R, n_keys, generator=g) > 0.3
    keep[0] = False  # a row with no visible key
    keep[1 % R, : n_keys // S] = False  # an empty split in a live row
    s = s.masked_fill(~keep, float("-inf"))
    chunks = torch.arange(n_keys) * S // n_keys  # split id of every key
    out, mm, rr, ent = [], [], [], []
    for i in range(S):
        si, vi = s[:, chunks == i], v[:, chunks == i]
        li = torch.logsumexp(si, -1)  # [R]
        pi = torch.where(torch.isfinite(li)[:, None], torch.exp(si - li.nan_to_num(0.0,
                         neginf=0.0)[:, None]), torch.zeros_like(si))
        out.append((pi[..., None] * vi).sum(1))
        ti = si / math.log(2.0)  # base-2 scores
        mi = ti.amax(-1).clamp_min(-1e30) if ti.shape[-1] else torch.full((R,), -1e30,
                                                                           dtype=ti.dtype)
        mm.append(mi)
        rr.append(torch.exp2(ti - mi[:, None]).sum(-1).log2())  # log₂ l; −inf: empty split
        ent.append(-(torch.where(pi > 0, pi * pi.log(), torch.zeros_like(pi))).sum(-1))
    ltot = torch.logsumexp(s, -1)
    p = torch.where(torch.isfinite(ltot)[:, None],
                    torch.exp(s - ltot.nan_to_num(0.0, neginf=0.0)[:, None]), torch.zeros_like(s))
    truth = ((p[..., None] * v).sum(1), ltot,
             -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1))
    lse_parts = torch.stack([torch.stack(mm), torch.stack(rr)], dim=-1)  # [S, R, 2]
    parts = (torch.stack(out).reshape(S, *rows, D).float(),
             lse_parts.reshape(S, *rows, 2).float(), torch.stack(ent).reshape(S, *rows).float())
    return parts, tuple(t.reshape(*rows, *t.shape[1:]) for t in truth)


@pytest.mark.parametrize(("S", "rows", "D"), [(2, (1, 2, 5), 32), (3, (2, 1, 1), 96),
                                              (17, (1, 3, 37), 64), (64, (1, 1, 3), 128)])
def test_merge_kernel_matches_twin_and_fp64(S: int, rows: tuple[int, ...], D: int) -> None:
    from hjplug.kernels.triton.split_merge import merge_splits

    parts, truth = _partials(S, rows, D, n_keys=max(24, 2 * S))
    got = merge_splits(*parts, torch.float32)
    ref = merge_ref(*parts, torch.float32)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    o, lse, ent, pm = ref
    torch.testing.assert_close(((pm[..., 0] + pm[..., 1]) * math.log(2.0)).double(), truth[1],
                               rtol=1e-5, atol=1e-5)  # the merged parts: log Z = ln2·(m + r)
    torch.testing.assert_close(o.double(), truth[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), truth[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent.double(), truth[2], rtol=1e-5, atol=1e-5)
    flat = lse.reshape(-1)
    assert flat[0] == float("-inf") and ent.reshape(-1)[0] == 0  # the row with no key
    assert torch.all(o.reshape(-1, D)[0] == 0)
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[2]).all()


def test_merge_kernel_casts_to_the_input_dtype() -> None:
    from hjplug.kernels.triton.split_merge import merge_splits

    parts, _ = _partials(4, (1, 2, 9), 32)
    o = merge_splits(*parts, torch.float16)[0]
    ref = merge_ref(*parts, torch.float16)[0]
    assert o.dtype == torch.float16
    torch.testing.assert_close(o, ref, rtol=1e-3, atol=1e-3)
