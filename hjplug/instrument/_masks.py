"""Which 2-D mask marks the query rows of each attention call: the recorder's query validity.

A padded query still sees the real keys (masks remove keys only), so its row is left out of the
summary and sweep means. `track_attention_mask` keeps a stack whose top is the [B, S] bool mask
(True = real token) of the call in progress: the top-level call's `attention_mask`; for
encoder-decoder models each stack's own mask; None inside a non-text tower; for converted models
the mask each attention step's graph routes to it.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from torch import Tensor, nn

__all__ = ["encoder_decoder_stacks", "mask_argument", "other_towers", "query_mask",
           "track_attention_mask"]


def mask_argument(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                  stack_call: bool = False) -> Tensor | None:
    """The call's 2-D `attention_mask` [B, S] (keyword, or positional where the forward's
    signature names it) as bool (True = real token), else None. A top-level encoder-decoder
    call gives None (its `attention_mask` is the encoder's: it says nothing about decoder
    queries); `stack_call` = a call of its encoder or decoder stack, whose own `attention_mask`
    is that stack's query mask (encoder: the input mask; decoder: `decoder_attention_mask`)."""
    cfg = getattr(model, "config", None)
    if not stack_call and getattr(cfg, "is_encoder_decoder", False):
        return None
    mask = kwargs.get("attention_mask")
    if mask is None and args:
        import inspect

        try:
            mask = inspect.signature(model.forward).bind_partial(*args, **kwargs
                                                                  ).arguments.get("attention_mask")
        except (TypeError, ValueError):
            mask = None
    return query_mask(mask)


def query_mask(mask: Any) -> Tensor | None:
    """A 2-D 1 / 0 mask [B, S] as bool (True = real token); None for anything else (absent,
    4-D, or an additive 0 / −inf mask)."""
    if not isinstance(mask, Tensor) or mask.dim() != 2:
        return None
    if mask.is_floating_point() and bool((mask.detach() < 0).any()):
        return None  # an additive (0 / −inf) mask, not the 1 / 0 form
    return mask.detach() != 0


def encoder_decoder_stacks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of an encoder-decoder model's encoder and decoder stacks (get_encoder() /
    get_decoder()), in that order; [] for any other model."""
    if not getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return []
    found: list[tuple[str, nn.Module]] = []
    for getter in ("get_encoder", "get_decoder"):
        fn = getattr(model, getter, None)
        try:
            sub = fn() if callable(fn) else None
        except (AttributeError, NotImplementedError, TypeError):
            sub = None
        if isinstance(sub, nn.Module) and sub is not model:
            path = next((p for p, m in model.named_modules() if m is sub), None)
            if path is not None:
                found.append((path, sub))
    return found


def other_towers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of the outermost sub-modules of a multi-tower model (CLIP, SigLIP, LLaVA,
    BLIP-2, …) whose config is a sub-config other than the text one (vision, audio, Q-Former):
    the top-level 2-D `attention_mask` marks text tokens and says nothing about their rows."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "is_encoder_decoder", False):
        return []  # its stacks carry their own masks (encoder_decoder_stacks)
    subs = [getattr(cfg, k, None) for k in (getattr(cfg, "sub_configs", None) or {})
            if "text" not in k]
    ids = {id(c) for c in subs if c is not None and c is not cfg}
    if not ids:
        return []
    found: list[tuple[str, nn.Module]] = []
    for path, m in model.named_modules():
        if id(getattr(m, "config", None)) in ids and not any(
                path.startswith(p + ".") for p, _ in found):
            found.append((path, m))
    return found


def track_attention_mask(model: nn.Module, stack: ExitStack) -> list[Tensor | None]:
    """A stack whose top is the query-validity mask [B, S] (bool, True = real token) of the
    model call in progress (None: no 2-D attention_mask); hooks live on `stack`.

    Encoder-decoder models: the top-level call pushes None and each call of the encoder /
    decoder stack pushes its own `attention_mask`, so encoder self-attention rows are matched
    with the input mask and decoder self- and cross-attention rows (decoder queries) with
    `decoder_attention_mask` — never the encoder mask with decoder rows of the same length.
    Multi-tower models: each non-text tower (`other_towers`) pushes None for its calls, so the
    text mask never marks vision / audio rows, even where their shapes coincide. Converted models
    (`hjplug.convert`): each attention step pushes the mask its graph routes to it
    (`_mask_scope.fx_mask_scopes`)."""
    masks: list[Tensor | None] = []
    call: dict[str, Tensor | None] = {}  # the top-level call's 2-D masks by keyword

    def pre(stack_call: bool | None) -> Any:
        def hook(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            masks.append(None if stack_call is None else mask_argument(m, args, kwargs,
                                                                        stack_call))
        return hook

    def post(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if masks:
            masks.pop()

    def top(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        call.clear()
        call.update({k: query_mask(kwargs.get(k)) for k in ("attention_mask",
                                                             "decoder_attention_mask")})
        masks.append(mask_argument(m, args, kwargs))

    def step_pre(name: str | None) -> Any:
        def hook(m: nn.Module, args: tuple[Any, ...]) -> None:
            masks.append(call.get(name) if name else None)
        return hook

    scoped: list[tuple[nn.Module, bool | None]] = [(model, False)]
    scoped += [(m, True) for _, m in encoder_decoder_stacks(model)]
    scoped += [(m, None) for _, m in other_towers(model)]  # None: no query mask inside
    from hjplug.instrument._fx import is_fx
    from hjplug.instrument._mask_scope import fx_mask_scopes

    steps = fx_mask_scopes(model) if is_fx(model) else {}
    for sub, stack_call in scoped:
        hook = top if steps and sub is model else pre(stack_call)
        stack.callback(sub.register_forward_pre_hook(hook, with_kwargs=True).remove)
        stack.callback(sub.register_forward_hook(post, always_call=True).remove)
    for step, name in steps.items():
        stack.callback(step.register_forward_pre_hook(step_pre(name)).remove)
        stack.callback(step.register_forward_hook(post, always_call=True).remove)
    return masks
