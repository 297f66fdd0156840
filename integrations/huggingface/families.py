"""Model families as small declarative entries (optimum-style): which modules are attention, and
how their HJ reading reads. No forward code is copied: every family runs through transformers'
`AttentionInterface`; an entry only names the attention classes and what the bias b_j holds.

One head h of an entry reads as the LSE (Hopf–Cole) step in its query x_i

    u_h(x_i) = ε_h·log Σ_j exp((x_i·M_h·x_j + b_ij)/ε_h),  M_h = W_Q,h W_K,hᵀ,  ε_h = 1/scaling,

with π_ij = softmax_j(·) the Gibbs weights and out_i = Σ_j π_ij v_j (paper-notes §4).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "GENERIC", "Family", "family_for"]


@dataclass(frozen=True)
class Family:
    """One model family.

    name:       short name (tests key on it: every registered family needs a test)
    model_types: `config.model_type` values it covers (empty = generic entry, matches any model)
    attention:  class names of the modules that call `ALL_ATTENTION_FUNCTIONS.get_interface`
                (empty = any such module, found by inspecting the class's forward)
    bias:       what the additive bias b_ij holds (masked key = removed atom, b_ij = −∞)
    positions:  how positions enter the scores (rotary keeps the scores linear in the query)
    softcap:    config attribute of the logit soft-cap c·tanh(s/c) (not an LSE transform: the
                heads of a soft-capped family are marked structural)
    """

    name: str
    model_types: tuple[str, ...]
    attention: tuple[str, ...]
    bias: str = "causal mask + padding mask"
    positions: str = "learned absolute embeddings (outside the scores)"
    softcap: str | None = None
    notes: str = ""


_ROPE = "rotary: s_ij = q_i·R_{j−i}·k_j, still linear in the query"
_ENC = "padding mask (bidirectional)"

FAMILIES: tuple[Family, ...] = (
    Family("gpt2", ("gpt2",), ("GPT2Attention",)),
    Family("bert", ("bert",), ("BertSelfAttention", "BertCrossAttention"), bias=_ENC),
    Family("llama", ("llama",), ("LlamaAttention",), positions=_ROPE),
    Family("mistral", ("mistral",), ("MistralAttention",), positions=_ROPE,
           bias="causal mask + padding mask + sliding window"),
    Family("qwen2", ("qwen2",), ("Qwen2Attention",), positions=_ROPE,
           bias="causal mask + padding mask (+ sliding window on sliding layers)"),
    Family("qwen3", ("qwen3",), ("Qwen3Attention",), positions=_ROPE,
           bias="causal mask + padding mask (+ sliding window on sliding layers)",
           notes="q/k RMS-normalised per head before the scores"),
    Family("t5", ("t5",), ("T5Attention",), bias="relative position bias b_ij + mask",
           positions="relative position buckets (in b_ij)", notes="scaling = 1 (ε = 1)"),
    Family("vit", ("vit",), ("ViTAttention",), bias="none (all patches visible)"),
    Family("jamba", ("jamba",), ("JambaAttention",), positions="none (Mamba layers carry order)",
           notes="hybrid: only the attention layers are HJ attention steps; Mamba layers are not"),
)

GENERIC = Family(
    "generic", (), (), bias="whatever mask / bias the model passes", positions="model-specific",
    softcap="attn_logit_softcapping",
    notes="generic entry: any module whose forward calls ALL_ATTENTION_FUNCTIONS.get_interface",
)


def family_for(model_type: str | None) -> Family:
    """The entry whose `model_types` holds `model_type`, else the generic entry."""
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    return GENERIC
