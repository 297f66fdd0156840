"""The zoo: expected blocks per kind, parity of the converted model, the original untouched."""

from __future__ import annotations

import hjzoo
import pytest
import torch

# kind -> count for each tiny model (2 layers unless said otherwise)
EXPECTED: dict[str, dict[str, int]] = {
    # L attention, 2L residual, L GELU (open)
    "gpt2": {"attention": 2, "residual": 4, "activation": 2},
    "gpt2:eager": {"attention": 2, "residual": 4, "activation": 2},
    # + the pooler's tanh (exact)
    "bert": {"attention": 2, "residual": 4, "activation": 3},
    "bert:eager": {"attention": 2, "residual": 4, "activation": 3},
    "llama": {"attention": 2, "residual": 4, "activation": 2},
    "llama:eager": {"attention": 2, "residual": 4, "activation": 2},
    "mistral": {"attention": 2, "residual": 4, "activation": 2},
    "qwen2": {"attention": 2, "residual": 4, "activation": 2},
    "qwen3": {"attention": 2, "residual": 4, "activation": 2},
    # encoder: 2 self-attn, 4 residual, 2 ReLU; decoder: 2 self + 2 cross, 6 residual, 2 ReLU
    "t5": {"attention": 6, "residual": 10, "activation": 4},
    "t5:eager": {"attention": 6, "residual": 10, "activation": 4},
    "vit": {"attention": 2, "residual": 4, "activation": 3},
    # mixer SSM + its SiLU gates (one block per mixer), 1 residual per layer
    "mamba": {"ssm": 2, "residual": 2, "activation": 2},
    "mamba2": {"ssm": 2, "residual": 2, "activation": 4},
    # time-mix = linear recurrence; receptance σ, channel-mix relu² and σ
    "rwkv": {"ssm": 2, "residual": 4, "activation": 6},
    # layer 0 Mamba + dense MLP, layer 1 attention + MoE (router softmax = LSE readout)
    "jamba": {"ssm": 1, "attention": 1, "residual": 4, "lse": 1, "activation": 3},
    # ALiBi: fused in baddbmm (Bloom), an additive float mask (Falcon, parallel attn + MLP)
    "bloom": {"attention": 2, "residual": 4, "activation": 2},
    "falcon": {"attention": 2, "residual": 2, "activation": 2},
    "falcon:eager": {"attention": 2, "residual": 2, "activation": 2},
    "lstm": {"recurrent": 1},
    "gru": {"recurrent": 1},
    "rnn": {"recurrent": 1},
    "hand_gru": {"recurrent": 1},
    # stem ReLU + 2 ReLUs per block (one block per module), 3 skips, log-softmax head
    "resnet": {"activation": 4, "residual": 3, "lse": 1},
    # two LSE layers (ε = 0.5, 1), softplus, softmax head
    "lse_mlp": {"lse": 3, "activation": 1},
}
CASES = sorted(EXPECTED)


@pytest.mark.parametrize("name", CASES)
def test_blocks_per_kind(prepared, name: str) -> None:
    assert prepared(name).report.kinds() == EXPECTED[name]


@pytest.mark.parametrize("name", CASES)
def test_converted_matches_original(prepared, name: str) -> None:
    p = prepared(name)
    with torch.no_grad():
        out = hjzoo.call(p.converted, p.inputs)
    assert hjzoo.max_rel_error(p.reference, out) <= 1e-5
    steps = p.converted.steps
    rewritable = [b for b in p.report.blocks if b.exactness != "open"]
    assert sorted(steps) == sorted(b.path for b in rewritable)


@pytest.mark.parametrize("name", CASES)
def test_original_untouched(prepared, name: str) -> None:
    p = prepared(name)
    assert hjzoo.checksum(p.model) == p.checksum_before
    own = {t.data_ptr() for t in p.model.state_dict().values() if t.numel()}
    new = {t.data_ptr() for t in p.converted.state_dict().values() if t.numel()}
    assert not own & new, "the converted module must not share storage with the original"
    assert "forward" not in vars(p.model)  # no instance-level patch left behind
    with torch.no_grad():
        again = hjzoo.call(p.model, p.inputs, **p.converted.injected)
    assert hjzoo.max_rel_error(p.reference, again) == 0.0


@pytest.mark.parametrize("name", ["gpt2", "llama", "t5", "lse_mlp", "hand_gru", "mamba"])
def test_inspect_of_converted_gives_same_report(prepared, name: str) -> None:
    import hjplug

    p = prepared(name)
    again = hjplug.inspect(p.converted)
    assert [b.to_dict() for b in again.blocks] == [b.to_dict() for b in p.report.blocks]


def test_sdpa_and_eager_read_the_same(prepared) -> None:
    for base in ("gpt2", "bert", "llama", "t5"):
        a, b = prepared(base).report.blocks, prepared(f"{base}:eager").report.blocks
        att_a = [(x.path, x.epsilon) for x in a if x.kind == "attention"]
        att_b = [(x.path, x.epsilon) for x in b if x.kind == "attention"]
        assert att_a == att_b


def test_attention_records(prepared) -> None:
    llama = [b for b in prepared("llama").report.blocks if b.kind == "attention"]
    assert all(b.epsilon == pytest.approx(8**0.5) for b in llama)  # √d_head, d_head = 8
    assert all("RoPE" in b.notes and "grouped-query" in b.notes and "causal" in b.notes
               for b in llama)
    mistral = [b for b in prepared("mistral").report.blocks if b.kind == "attention"]
    assert all("sliding-window(4)" in b.notes for b in mistral)
    t5 = [b for b in prepared("t5").report.blocks if b.kind == "attention"]
    assert all(b.epsilon == 1.0 for b in t5)  # T5 has no 1/√d scaling
    assert sum("relative position bias" in b.notes for b in t5) == 4  # the self-attentions
    bert = [b for b in prepared("bert").report.blocks if b.kind == "attention"]
    assert all("padding" in b.notes and "causal" not in b.notes for b in bert)


def test_lse_temperatures(prepared) -> None:
    eps = {b.path: b.epsilon for b in prepared("lse_mlp").report.blocks if b.kind == "lse"}
    assert eps == {"l1": 0.5, "l2": 1.0, "(root)": 1.0}


def test_every_rule_and_family_is_tested(prepared) -> None:
    """Every registered rule matches somewhere in the zoo; every zoo family has expectations."""
    from hjplug.passes import DEFAULT_RULES

    families = set(hjzoo.ZOO_HF) | set(hjzoo.PLAIN)
    assert families <= {c.partition(":")[0] for c in EXPECTED}
    seen = {kind for c in CASES for kind in EXPECTED[c]}
    assert {r.name for r in DEFAULT_RULES} <= seen
    for rule in DEFAULT_RULES:
        assert any(prepared(c).report.counts.get(rule.name) for c in CASES), rule.name


@pytest.mark.parametrize("name", ["gpt2", "llama", "t5"])
def test_dynamic_convert_takes_other_lengths(prepared, name: str) -> None:
    import hjplug

    p = prepared(name)
    hj = hjplug.convert(p.model, p.inputs, dynamic=True)
    assert hjplug.inspect(hj).kinds() == EXPECTED[name]
    shorter = {k: v[:1, :5] for k, v in p.inputs.items()}  # batch 1, 5 tokens
    with torch.no_grad():
        ref = hjzoo.call(p.model, shorter, **hj.injected)
        out = hjzoo.call(hj, shorter)
    assert hjzoo.max_rel_error(ref, out) <= 1e-5


def test_static_convert_refuses_other_shapes_clearly(prepared) -> None:
    import hjplug

    p = prepared("gpt2")
    with pytest.raises(hjplug.HJPlugError, match="dynamic=True"):
        hjzoo.call(p.converted, {"input_ids": p.inputs["input_ids"][:, :5]})


def test_alibi_chain_deforms(prepared) -> None:
    """Bloom's baddbmm chain: ε slightly off ε₀ runs the scaled replay (≈ exact), ε₀/2 differs."""
    p = prepared("bloom")
    steps = [s for s in p.converted.steps.values() if s.spec.kind == "attention"]
    assert all("ALiBi" in s.spec.notes and s.deform_core is not None for s in steps)
    try:
        for s in steps:
            s.epsilon = float(s.identified_epsilon) * (1 + 1e-7)
        with torch.no_grad():
            near = hjzoo.call(p.converted, p.inputs)
        assert hjzoo.max_rel_error(p.reference, near) <= 1e-5
        for s in steps:
            s.epsilon = float(s.identified_epsilon) / 2
        with torch.no_grad():
            sharp = hjzoo.call(p.converted, p.inputs)
        assert hjzoo.max_rel_error(p.reference, sharp) > 1e-4
    finally:
        for s in steps:
            s.reset_epsilon()


def test_every_hf_integration_family_is_in_the_zoo() -> None:
    """Families the HF integration registers are recognised by the FX pass too (tested here)."""
    families = pytest.importorskip("hjplug.integrations.huggingface.families")
    zoo = {c.partition(":")[0] for c in EXPECTED}
    missing = [t for f in families.FAMILIES for t in f.model_types if t not in zoo]
    assert not missing, f"families without an FX-pass zoo test: {missing}"
