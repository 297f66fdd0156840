"""Pre-scaled queries (OPT, Whisper: q = q_proj(x)·s₀, softmax(q·kᵀ) at scale 1): the FX record
gives ε = 1/s₀ = √d_head in q_proj(x)'s units, the value the Hugging Face path records for the
same layer; the converted model matches the unmodified one, and at a deformed ε the logits are
q_proj(x)·kᵀ/ε (fp64 reference from the original model's own projections)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import hjplug

tf = pytest.importorskip("transformers")
D_HEAD = 8


def _opt(impl: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = tf.OPTConfig(hidden_size=32, ffn_dim=48, num_hidden_layers=1, num_attention_heads=4,
                       vocab_size=101, word_embed_proj_dim=32, attn_implementation=impl)
    return tf.OPTModel(cfg).eval()


def _projections(model: torch.nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """q_proj(x), k_proj(x) of layer 0 of the unmodified model, fp64, [B, H, S, d]."""
    attn = model.decoder.layers[0].self_attn
    got: dict[str, torch.Tensor] = {}
    hooks = [getattr(attn, n).register_forward_hook(
        lambda m, a, out, n=n: got.__setitem__(n, out.detach().double()))
        for n in ("q_proj", "k_proj")]
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    for h in hooks:
        h.remove()
    return tuple(t.view(*t.shape[:2], -1, D_HEAD).transpose(1, 2) for t in
                 (got["q_proj"], got["k_proj"]))


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_fx_epsilon_in_q_proj_units(impl: str) -> None:
    model = _opt(impl)
    ids = torch.randint(0, 101, (1, 7), generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = hjplug.inspect(model, {"input_ids": ids})
        hj = hjplug.convert(model, {"input_ids": ids})
    (block,) = [b for b in report.blocks if b.kind == "attention"]
    assert block.epsilon == pytest.approx(math.sqrt(D_HEAD))  # the HF path's ε₀ = 1/s₀
    assert str(block.exactness) == "exact"
    assert block.hamiltonian.params["q_prescale"] == pytest.approx(D_HEAD ** -0.5)
    assert "q_proj" in block.notes
    (step,) = [s for s in hj.steps.values() if s.spec.kind == "attention"]
    assert step.epsilon == pytest.approx(math.sqrt(D_HEAD))
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=False).last_hidden_state
        assert torch.equal(hj(input_ids=ids).last_hidden_state, ref)
    q, k = _projections(model, ids)
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    for eps in (math.sqrt(D_HEAD), 1.5, 6.0, (1.0, 2.0, 3.0, 4.0)):  # z = q_proj(x)·kᵀ/ε
        e = torch.tensor(eps, dtype=torch.float64).reshape(-1, 1, 1)  # one ε, or one per head
        z = (q @ k.transpose(-1, -2) / e).masked_fill(~causal, float("-inf"))
        step.epsilon = eps
        with torch.no_grad(), hjplug.instrument(hj, stats=("lse", "entropy")) as rec:
            hj(input_ids=ids)
        torch.testing.assert_close(rec["layers.0.attn.lse"].double(), torch.logsumexp(z, -1),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(rec["layers.0.attn.value"].double(),
                                   e[..., 0] * torch.logsumexp(z, -1), atol=1e-4, rtol=1e-5)
    step.reset_epsilon()


def test_fx_and_hf_record_the_same_epsilon() -> None:
    import hjplug.integrations.huggingface as hf

    fx_model, hf_model = _opt("eager"), _opt("eager")
    ids = torch.randint(0, 101, (1, 7), generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (block,) = [b for b in hjplug.inspect(fx_model, {"input_ids": ids}).blocks
                    if b.kind == "attention"]
        hm = hf.enable(hf_model)
    eps_hf = hf.specs(hm)[0].epsilon
    eps_hf = eps_hf[0] if isinstance(eps_hf, tuple) else eps_hf
    assert block.epsilon == pytest.approx(eps_hf)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_deformed_output_matches_a_rescaled_model(impl: str) -> None:
    """ε = λ·√d on the converted model = the original with its query scaling s₀ → s₀/λ."""
    import copy

    model = _opt(impl)
    ids = torch.randint(0, 101, (2, 7), generator=torch.Generator().manual_seed(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hj = hjplug.convert(model, {"input_ids": ids})
    (step,) = [s for s in hj.steps.values() if s.spec.kind == "attention"]
    for lam in (0.5, 3.0):
        ref_model = copy.deepcopy(model)
        ref_model.decoder.layers[0].self_attn.scaling = D_HEAD ** -0.5 / lam
        step.epsilon = lam * math.sqrt(D_HEAD)
        with torch.no_grad():
            ref = ref_model(input_ids=ids, use_cache=False).last_hidden_state
            torch.testing.assert_close(hj(input_ids=ids).last_hidden_state, ref, atol=1e-5,
                                       rtol=1e-5)
    step.reset_epsilon()
