"""enable / disable / is_enabled / specs: switch a transformers model to attn_implementation
"hjplug" and back, with one block record (HJSpec) on every attention module.

enable(model) returns a deep copy by default (the caller's model is never mutated);
enable(model, inplace=True) switches the given model. disable(model) restores each config's
original attention implementation exactly, so outputs are bitwise equal to before enabling.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from torch import nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.integrations.huggingface.blocks import attention_blocks, build_spec, deformed_spec
from hjplug.integrations.huggingface.records import ModuleState
from hjplug.integrations.huggingface.registration import NAME, check_implementation, register
from hjplug.spec import HJSpec

__all__ = ["attach", "disable", "enable", "is_enabled", "specs", "states"]

M = TypeVar("M", bound=nn.Module)
_ORIGINAL = "_hjplug_original"  # model attribute: ((config, original implementation), ...)
FX_HINT = ("Use the FX path instead: hjplug.convert(model, example_inputs) captures the model "
           "with torch.export and rewrites its attention blocks.")


def _where(fn: str) -> str:
    return f"hjplug.integrations.huggingface.{fn}"


def _check_pretrained(model: object, fn: str) -> None:
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise InvalidArgumentError(
            "model", "a transformers PreTrainedModel", type(model).__name__, where=_where(fn),
            hint=FX_HINT)


def _attention_like(model: nn.Module) -> list[str]:
    return sorted({type(m).__name__ for m in model.modules() if "Attention" in type(m).__name__})


def _check_supported(model: nn.Module) -> None:
    """Every sub-model must dispatch attention through AttentionInterface; name what does not."""
    from transformers import PreTrainedModel

    for sub in model.modules():
        if isinstance(sub, PreTrainedModel) and not type(sub)._can_set_attn_implementation():
            names = ", ".join(_attention_like(sub)) or type(sub).__name__
            raise HJPlugError(
                f"hjplug.integrations.huggingface.enable: {type(sub).__name__} computes its "
                f"attention in {names} without transformers' AttentionInterface, so "
                f'attn_implementation="hjplug" cannot reach it (expected every attention module '
                f"to call ALL_ATTENTION_FUNCTIONS). {FX_HINT}")
    if next(attention_blocks(model), None) is None:
        found = ", ".join(_attention_like(model)) or "none"
        raise HJPlugError(
            f"hjplug.integrations.huggingface.enable: {type(model).__name__} has no module whose "
            f"forward goes through AttentionInterface (attention-like modules found: {found}). "
            f"{FX_HINT}")


def _configs(model: nn.Module) -> list[Any]:
    """model.config, its sub-configs (any depth) and the configs of nested sub-models."""
    from transformers import PreTrainedModel

    seen: dict[int, Any] = {}
    todo: list[Any] = [m.config for m in model.modules() if isinstance(m, PreTrainedModel)]
    while todo:
        cfg = todo.pop()
        if cfg is None or id(cfg) in seen:
            continue
        seen[id(cfg)] = cfg
        todo.extend(getattr(cfg, k, None) for k in getattr(cfg, "sub_configs", {}) or {})
    return list(seen.values())


def is_enabled(model: nn.Module) -> bool:
    """True when the model's attention implementation is "hjplug" (enable() or from_pretrained)."""
    cfg = getattr(model, "config", None)
    return getattr(cfg, "_attn_implementation", None) == NAME


def attach(model: nn.Module, keep: bool = False) -> list[ModuleState]:
    """Give every attention module its state and record (idempotent); returns them in order.

    Sets `module._hjplug` (runtime state) and `module.hj_spec` (the current HJSpec).
    """
    out: list[ModuleState] = []
    for index, (path, mod, fam) in enumerate(attention_blocks(model)):
        st: ModuleState | None = getattr(mod, "_hjplug", None)
        if st is None:
            spec = build_spec(path, mod, fam)
            heads = len(spec.epsilon) if isinstance(spec.epsilon, tuple) else 1
            st = ModuleState(path=path, index=index, heads=heads, spec=spec, keep=keep)
            object.__setattr__(mod, "_hjplug", st)  # plain attributes: not parameters/buffers
            object.__setattr__(mod, "hj_spec", spec)
        out.append(st)
    return out


def states(model: nn.Module, fn: str = "states") -> list[ModuleState]:
    """The attached states of an enabled model (attaching them if loaded via from_pretrained)."""
    if not is_enabled(model):
        impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
        raise HJPlugError(
            f"{_where(fn)}: expected an hjplug-enabled model, got {type(model).__name__} with "
            f"attn_implementation={impl!r}. Call hjplug.integrations.huggingface.enable(model) "
            "first.")
    return attach(model)


def enable(model: M, inplace: bool = False, stats: bool = False) -> M:
    """Switch `model` to attn_implementation="hjplug"; returns the enabled model.

    inplace=False (default): a deep copy is enabled and returned; the caller's model is untouched.
    inplace=True: `model` itself is switched (and returned).
    stats=True: every attention call computes its per-head statistics (kernel path) and keeps the
    last ones in `module._hjplug.last`; with stats=False the stock SDPA call runs unless a
    recorder or a deformation is active.
    """
    _check_pretrained(model, "enable")
    if is_enabled(model):
        raise HJPlugError(
            f"{_where('enable')}: {type(model).__name__} is already hjplug-enabled (expected a "
            "model with another attn_implementation). Use it as is, or call disable(model) first.")
    _check_supported(model)
    register()
    target: Any = model if inplace else copy.deepcopy(model)
    original = tuple((cfg, cfg._attn_implementation_internal) for cfg in _configs(target))
    target.set_attn_implementation(NAME)
    stale = [type(c).__name__ for c, _ in original if c._attn_implementation != NAME]
    if stale:
        for cfg, impl in original:
            cfg._attn_implementation_internal = impl
        raise HJPlugError(f"{_where('enable')}: the configs {stale} did not switch to "
                          f'"hjplug" (their models refuse dynamic attention switching). {FX_HINT}')
    object.__setattr__(target, _ORIGINAL, original)
    attach(target, keep=stats)
    return target  # type: ignore[no-any-return]


def disable(model: M, implementation: str | None = None) -> M:
    """Restore the attention implementation(s) the model had before enable (in place; returned).

    implementation: switch to this one instead (validated: the error lists the valid strings);
    required for a model loaded with attn_implementation="hjplug" (defaults to "sdpa" there).
    Removes every hjplug state, record, recorder and deformation from the modules.
    """
    _check_pretrained(model, "disable")
    pm: Any = model
    if not is_enabled(model):
        raise HJPlugError(
            f"{_where('disable')}: {type(model).__name__} is not hjplug-enabled (its "
            f"attn_implementation is {pm.config._attn_implementation!r}); nothing to restore.")
    if implementation is not None:
        check_implementation(implementation, _where("disable"))
    for _, mod, _ in attention_blocks(model):
        for attr in ("_hjplug", "hj_spec"):
            if attr in mod.__dict__:
                delattr(mod, attr)
    original = model.__dict__.pop(_ORIGINAL, None)
    if implementation is None and original is not None:
        for cfg, impl in original:
            cfg._attn_implementation_internal = impl
    else:
        pm.set_attn_implementation(implementation or "sdpa")
    return model


def specs(model: nn.Module) -> list[HJSpec]:
    """The block record of every attention module, in module order, with the current ε.

    No capture, no forward: read from the modules (ε_h = λ_h / scaling).
    """
    return [deformed_spec(st.spec, st.scale) for st in states(model, "specs")]
