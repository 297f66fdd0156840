"""The q·kᵀ form of the fused ε-sweep (kernels/triton/entropy_sweep.py, _sweep_qk) writes every
output element: its output buffer comes from hj_attention.new_output, so with the POISON flag
set it starts as NaN, and any row / ε the kernel misses would stay NaN. (The existing
test_entropy_sweep_qk_matches_reference runs without poison: torch.empty could hide a miss.)

Run by tests/kernels/test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start).
"""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels.reference.entropy_sweep import entropy_sweep as sweep_ref  # noqa: E402


def test_poison_flag_poisons_the_sweep_buffers(monkeypatch):
    """The mechanism the next test relies on: new_output (used by entropy_sweep_fwd) returns
    NaN-filled buffers while hj_attention.POISON is set."""
    from hjplug.kernels.triton import entropy_sweep as sw
    from hjplug.kernels.triton import hj_attention as hja

    monkeypatch.setattr(hja, "POISON", True)
    buf = sw.new_output((3, 4), torch.float32, torch.device("cpu"))
    assert torch.isnan(buf).all()


@pytest.mark.parametrize(("S", "Sk", "D", "causal", "eps"), [
    (1, 37, 32, True, [0.5, 2.0, 5.66]),      # decode row
    (37, 37, 32, True, [0.5, 2.0, 5.66]),     # query tail (37 = 2·16 + 5)
    (37, 129, 32, False, [0.5, 2.0, 5.66]),
    (50, 37, 32, True, [1.0, 4.0]),           # Sq > Sk: top rows see no key (entropy 0)
    (37, 45, 24, True, [5.0]),                # D not a power of two, K = 1
    (17, 17, 128, False, [0.1, 0.5, 1.0, 2.0, 11.3]),  # D = 128, K = 5 (padded to 8)
])
def test_entropy_sweep_qk_writes_every_element(monkeypatch, S, Sk, D, causal, eps):
    from hjplug.kernels.triton import hj_attention as hja
    from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd

    g = torch.Generator().manual_seed(S * 131 + Sk + D)
    q = torch.randn(1, S, 4, D, generator=g).transpose(1, 2)  # HF layout: strided [B, H, S, D]
    k = torch.randn(1, Sk, 2, D, generator=g).transpose(1, 2)
    ev = torch.tensor(eps)
    monkeypatch.setattr(hja, "POISON", True)
    got = entropy_sweep_fwd(None, ev, q=q, k=k, causal=causal)
    monkeypatch.setattr(hja, "POISON", False)
    want = sweep_ref(None, ev, q=q, k=k, causal=causal, chunk=16)
    assert got.shape == (1, 4, S, len(eps)) and got.dtype == torch.float32
    missed = torch.isnan(got) & ~torch.isnan(want)
    assert not missed.any(), f"{int(missed.sum())} unwritten elements, first at " \
                             f"{missed.nonzero()[0].tolist()}"
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if causal and Sk < S:  # rows without a visible key: written as 0, not left as poison
        assert torch.equal(got[:, :, : S - Sk], torch.zeros_like(got[:, :, : S - Sk]))
