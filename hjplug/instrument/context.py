"""`instrument(model, stats=...)`: a context recording ε-statistics; `deform` for both model kinds.

    with hjplug.instrument(model, stats=("epsilon", "entropy", "lse", "gap", "topk",
                                         "curvature")) as rec:
        model(**inputs)
    rec["layers.3.attn.entropy"]; rec.summary(); rec.to_dataframe(); rec.save(path)

Hooks exist only inside the context (nnsight-style: registered on entry, removed on exit, also
after an exception); off = free. Nested contexts and concurrent contexts on different models
are independent. Supported: Hugging Face PreTrainedModels (enabled for the context if needed),
FX-converted models (`hjplug.convert`), and any nn.Module for its recurrent gates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from torch import nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument._masks import track_attention_mask
from hjplug.instrument.names import DEFAULT_STATS, check_stats
from hjplug.instrument.recorder import Recorder

__all__ = ["deform", "instrument", "track_attention_mask"]

_WHERE = "hjplug.instrument"


def _check_topk(topk: object, where: str) -> int:
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise InvalidArgumentError("topk", "an int ≥ 1", topk, where=where)
    return topk


@contextmanager
def instrument(model: nn.Module, stats: str | Iterable[str] = DEFAULT_STATS, *, topk: int = 5,
               readouts: bool = True, backend: str = "auto", grad: bool = False
               ) -> Iterator[Recorder]:
    """Record `stats` (see hjplug.instrument.names.STATS) for every forward inside the context.

    topk: k for the "topk" statistic. readouts: also instrument LM heads, classifiers, MoE
    routers, FX LSE steps and recurrent gates. backend (HF models): "kernel" = the integration's
    record() path (hjplug.kernels.hj_attention: fused Triton on CUDA, blockwise reference on
    CPU); "stats" = stock SDPA output plus a blockwise statistics-only pass (faster on CPU);
    "auto" = kernel on CUDA, stats elsewhere. Both agree with eager attention to ≤ 1e-5 (fp32).
    grad: the attention statistics (lse, value, entropy, normalized entropy, top-k weights) stay
    on the autograd graph, so a loss may use them (an entropy regulariser, say); their gradients
    come from the fused backward of hjplug.kernels.hj_attention. HF models then take the
    "kernel" backend; statistics an FX step derives from its logits (replayed attention chains)
    and readouts stay detached (the recorder's notes say which).
    """
    from hjplug.instrument._fx import attach_fx, is_fx
    from hjplug.instrument._hf import attach_hf, is_hf
    from hjplug.instrument._readouts import attach_readouts

    wanted = check_stats(stats, _WHERE)
    k = _check_topk(topk, _WHERE)
    if backend not in ("auto", "kernel", "stats"):
        raise InvalidArgumentError("backend", "'auto', 'kernel' or 'stats'", backend,
                                   where=_WHERE)
    if not isinstance(grad, bool):
        raise InvalidArgumentError("grad", "True or False", grad, where=_WHERE)
    if grad and backend == "stats":
        raise InvalidArgumentError(
            "backend", "'kernel' or 'auto' with grad=True (the statistics-only pass has no "
            "backward)", backend, where=_WHERE)
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("model", "a torch.nn.Module (Hugging Face or hjplug.convert "
                                   "output)", type(model).__name__, where=_WHERE)
    rec = Recorder(wanted, k, type(model).__name__, grad)
    with ExitStack() as stack:
        if is_hf(model) or is_fx(model):
            rec.masks = track_attention_mask(model, stack)
        if is_hf(model):
            attach_hf(model, rec, stack, readouts, "kernel" if grad else backend)
        elif is_fx(model):
            attach_fx(model, rec, stack, readouts)
        elif readouts:
            attach_readouts(model, rec, stack)
            rec.notes.append(f"{type(model).__name__} is neither a transformers model nor an "
                             "hjplug.convert result: only readouts and recurrent gates recorded")
        yield rec


@contextmanager
def deform(model: nn.Module, scale: float | Sequence[float],
           layers: Sequence[int] | int | None = None,
           heads: Sequence[int] | int | None = None) -> Iterator[None]:
    """ε_h → λ·ε_h inside the context, for HF models and FX-converted ones (per block, or per
    chosen head). λ = 0 is the tropical (hard-max) limit (whole blocks only on converted models).
    Restored exactly on exit."""
    from hjplug.instrument._fx import is_fx
    from hjplug.instrument._hf import ensure_enabled, is_hf

    with ExitStack() as stack:
        if is_hf(model):
            from hjplug.integrations.huggingface import deform as hf_deform

            ensure_enabled(model, stack)
            stack.enter_context(hf_deform(model, scale, layers, heads))
        elif is_fx(model):
            from hjplug.instrument.fx_deformation import FXDeformation

            stack.enter_context(FXDeformation(model, scale, layers, heads,  # type: ignore[arg-type]
                                              where="hjplug.instrument.deform"))
        else:
            raise HJPlugError(f"hjplug.instrument.deform: expected a transformers model or an "
                              f"hjplug.convert result; got {type(model).__name__}.")
        yield


def fx_layers(steps: list[Any], layers: Sequence[int] | int | None, where: str,
              model: nn.Module | None = None) -> list[int]:
    """Indices of the chosen attention steps. No attention step at all is an error for every λ
    (λ = 1 included): ε → λ·ε acts on attention only, and a no-op would hide that nothing was
    recognised as attention."""
    n = len(steps)
    if n == 0:
        raise HJPlugError(f"{where}: expected an hjplug.convert result with attention blocks "
                          f"(HJAttentionStep: ε → λ·ε deforms attention only); found "
                          f"{_found(model)}, so there is nothing to deform (for any λ, 1 "
                          "included). To see why no attention was recognised: hjplug.inspect("
                          "model, example_inputs).near_misses (`hjplug inspect --explain`); to "
                          "change another step's ε: hj.set_epsilon(value, kind=\"lse\") or "
                          "hj.steps[path].epsilon = value.")
    if layers is None:
        return list(range(n))
    items = [layers] if isinstance(layers, int) else list(layers)
    for x in items:
        if isinstance(x, bool) or not isinstance(x, int) or not -n <= x < n:
            raise InvalidArgumentError("layers", f"attention block indices in [0, {n})", x,
                                       where=where)
    return list(dict.fromkeys(x % n for x in items))


def _found(model: nn.Module | None) -> str:
    """'2 lse, 1 residual steps in <Class>' — what a converted model holds instead."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, dict):
        return "no attention step"
    kinds = Counter(str(s.spec.kind) for s in steps.values())
    what = ", ".join(f"{c} {k}" for k, c in kinds.items()) or "no HJ"
    return f"{what} step{'s' * (sum(kinds.values()) != 1)} in a converted " \
           f"{getattr(model, 'source_class', type(model).__name__)}"
