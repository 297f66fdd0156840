"""Registration of "hjplug" in transformers' AttentionInterface AND AttentionMaskInterface.

Both are needed: transformers builds masks only for names registered in AttentionMaskInterface;
for any other name `_preprocess_mask_arguments` returns no mask at all, so padding (and any
causal structure the attention function does not re-derive itself) silently disappears.
"hjplug" uses SDPA's mask function (bool, True = keep; sliding windows and padding included).
"""

from __future__ import annotations

from hjplug.errors import InvalidArgumentError

__all__ = ["NAME", "check_implementation", "is_registered", "register", "valid_implementations"]

NAME = "hjplug"


def register() -> None:
    """Make attn_implementation="hjplug" available to every transformers model (idempotent)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    from hjplug.integrations.huggingface.attention import hjplug_attention_forward

    AttentionInterface.register(NAME, hjplug_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def is_registered() -> bool:
    """True when "hjplug" is in both interfaces (attention function and mask function)."""
    from transformers import AttentionInterface, AttentionMaskInterface

    return NAME in AttentionInterface._global_mapping and NAME in (
        AttentionMaskInterface._global_mapping)


def valid_implementations() -> list[str]:
    """Every attn_implementation string transformers accepts now ("eager" + the interface)."""
    from transformers import AttentionInterface

    return ["eager", *AttentionInterface().valid_keys()]


def check_implementation(name: object, where: str) -> str:
    """`name` if transformers knows it, else an error listing the valid strings."""
    valid = valid_implementations()
    if not isinstance(name, str) or name not in valid:
        raise InvalidArgumentError(
            "attn_implementation", "one of " + ", ".join(repr(v) for v in valid), name,
            where=where,
            hint='Register hjplug first (hjplug.integrations.huggingface.register()) to use '
                 '"hjplug"; names are case-sensitive.')
    return name
