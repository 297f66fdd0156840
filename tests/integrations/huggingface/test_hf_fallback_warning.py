"""Calls with statistics that leave the kernel for the eager path (soft-cap, training dropout, a
tropical head) name their reason through `warn_fallback` (one KernelFallbackWarning per reason,
on CUDA); kernel-path and idle calls do not."""

from __future__ import annotations

import pytest
import torch

from hjplug.integrations.huggingface import attention as hf_attention
from hjplug.integrations.huggingface.records import ModuleState
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec


def _module(scale: tuple[float, ...] | None, keep: bool, training: bool = False
            ) -> torch.nn.Module:
    spec = HJSpec("x", BlockKind.ATTENTION, Hamiltonian("h"), (1.0,) * 2, None, Exactness.EXACT)
    mod = torch.nn.Module()
    mod.is_causal = False
    mod.train(training)
    mod._hjplug = ModuleState(path="layers.0.attn", index=0, heads=2, spec=spec, scale=scale,
                              keep=keep)
    return mod


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    seen: list[tuple] = []
    monkeypatch.setattr(hf_attention, "warn_fallback", lambda *a: seen.append(a))
    return seen


def _qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, 2, 4, 8, generator=g) for _ in range(3))  # type: ignore[return-value]


@pytest.mark.parametrize(("kw", "scale", "training", "reason"), [
    ({"softcap": 30.0}, None, False, "soft-capping"),
    ({"dropout": 0.1}, None, True, "dropout"),
    ({}, (0.0, 1.0), False, "tropical"),
])
def test_eager_fallback_with_statistics_names_its_reason(calls: list[tuple], kw: dict,
                                                         scale: tuple[float, ...] | None,
                                                         training: bool, reason: str) -> None:
    q, k, v = _qkv()
    mod = _module(scale, keep=True, training=training)
    hf_attention.hjplug_attention_forward(mod, q, k, v, None, scaling=0.3, **kw)
    assert mod._hjplug.last is not None and mod._hjplug.last.backend == "eager"
    assert len(calls) == 1
    where, why, on_cuda = calls[0]
    assert "layers.0.attn" in where and reason in why and on_cuda is False


def test_kernel_path_and_idle_calls_do_not_warn(calls: list[tuple]) -> None:
    q, k, v = _qkv()
    mod = _module(None, keep=True)
    hf_attention.hjplug_attention_forward(mod, q, k, v, None, scaling=0.3)
    assert mod._hjplug.last is not None and mod._hjplug.last.backend == "kernel"
    idle = _module(None, keep=False)
    hf_attention.hjplug_attention_forward(idle, q, k, v, None, scaling=0.3, softcap=30.0)
    assert calls == []
