"""Tiny models built in code (random weights, nothing downloaded) for the FX-pass tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

B, T = 2, 8
VOCAB = 97


def _ids(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (B, T), generator=g)


def _hf(model_type: str, impl: str | None = "sdpa", **kw: Any) -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    cfg = transformers.AutoConfig.for_model(model_type, **kw)
    if impl is not None:
        cfg._attn_implementation = impl
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(cfg).eval()


def _padded_mask() -> torch.Tensor:
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, -3:] = 0  # padding in the second sequence
    return mask


def gpt2(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    m = _hf("gpt2", impl, n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=64,
            bos_token_id=0, eos_token_id=0)
    return m, {"input_ids": _ids()}


def bert(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    m = _hf("bert", impl, num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
            intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=64)
    return m, {"input_ids": _ids(), "attention_mask": _padded_mask()}


def _decoder(model_type: str, impl: str = "sdpa", **extra: Any) -> tuple[nn.Module, dict]:
    m = _hf(model_type, impl, num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, vocab_size=VOCAB,
            max_position_embeddings=64, **extra)
    return m, {"input_ids": _ids(), "attention_mask": _padded_mask()}


def llama(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    return _decoder("llama", impl)


def mistral(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    return _decoder("mistral", impl, sliding_window=4)


def qwen2(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    return _decoder("qwen2", impl)


def qwen3(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    return _decoder("qwen3", impl, head_dim=8)


def t5(impl: str | None = None) -> tuple[nn.Module, dict]:
    m = _hf("t5", impl, num_layers=2, num_decoder_layers=2, d_model=32, num_heads=4, d_kv=8,
            d_ff=64, vocab_size=VOCAB, relative_attention_num_buckets=8)
    return m, {"input_ids": _ids(), "attention_mask": _padded_mask(),
               "decoder_input_ids": _ids(1)}


def vit(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    m = _hf("vit", impl, num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
            intermediate_size=64, image_size=16, patch_size=8, num_channels=3)
    g = torch.Generator().manual_seed(0)
    return m, {"pixel_values": torch.randn(B, 3, 16, 16, generator=g)}


def mamba() -> tuple[nn.Module, dict]:
    m = _hf("mamba", None, num_hidden_layers=2, hidden_size=32, state_size=4, vocab_size=VOCAB,
            expand=2, conv_kernel=3, time_step_rank=4)
    return m, {"input_ids": _ids()}


def mamba2() -> tuple[nn.Module, dict]:
    m = _hf("mamba2", None, num_hidden_layers=2, hidden_size=32, state_size=8, vocab_size=VOCAB,
            expand=2, conv_kernel=3, num_heads=8, head_dim=8, n_groups=1, chunk_size=4)
    return m, {"input_ids": _ids()}


def rwkv() -> tuple[nn.Module, dict]:
    m = _hf("rwkv", None, num_hidden_layers=2, hidden_size=32, attention_hidden_size=32,
            intermediate_size=64, vocab_size=VOCAB, context_length=64)
    return m, {"input_ids": _ids()}


def jamba() -> tuple[nn.Module, dict]:
    m = _hf("jamba", "sdpa", num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, vocab_size=VOCAB, num_experts=2,
            num_experts_per_tok=1, expert_layer_period=2, expert_layer_offset=1,
            attn_layer_period=2, attn_layer_offset=1, mamba_d_state=4, mamba_d_conv=3,
            mamba_expand=2, mamba_dt_rank=4, use_mamba_kernels=False)
    return m, {"input_ids": _ids()}


def bloom(impl: str = "eager") -> tuple[nn.Module, dict]:
    """ALiBi position biases, fused into the scores by baddbmm (Bloom has no SDPA path)."""
    m = _hf("bloom", impl, n_layer=2, hidden_size=32, n_head=4, vocab_size=VOCAB)
    return m, {"input_ids": _ids(), "attention_mask": _padded_mask()}


def falcon(impl: str = "sdpa") -> tuple[nn.Module, dict]:
    """ALiBi as an additive float mask; parallel attention + MLP (one residual per layer)."""
    m = _hf("falcon", impl, num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
            vocab_size=VOCAB, alibi=True, new_decoder_architecture=False, multi_query=False)
    return m, {"input_ids": _ids(), "attention_mask": _padded_mask()}


# ----------------------------------------------------------------------------- plain PyTorch
class SeqModel(nn.Module):
    """Embedding → nn.LSTM / GRU / RNN → linear head."""

    def __init__(self, cell: type[nn.Module], **kw: Any) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = cell(16, 24, batch_first=True, **kw)
        self.head = nn.Linear(24, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.rnn(self.embed(ids))[0]  # (B, T, 24)
        return self.head(out)  # (B, T, 5)


class HandGRUCell(nn.Module):
    """h' = (1 − z)⊙n + z⊙h, z = σ(W_z[x, h]), r = σ(W_r[x, h]), n = tanh(W_n[x, r⊙h])."""

    def __init__(self, d_in: int, d_h: int) -> None:
        super().__init__()
        self.zr = nn.Linear(d_in + d_h, 2 * d_h)
        self.n = nn.Linear(d_in + d_h, d_h)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.zr(torch.cat([x, h], -1))).chunk(2, -1)  # (B, d_h) each
        n = torch.tanh(self.n(torch.cat([x, r * h], -1)))  # (B, d_h)
        return (1 - z) * n + z * h


class HandGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = HandGRUCell(6, 12)
        self.out = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 6)
        h = x.new_zeros(x.shape[0], 12)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.out(h)


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(BasicBlock(8), BasicBlock(8), BasicBlock(8))
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.stem(x)))  # (B, 8, H, W)
        return torch.log_softmax(self.fc(h.mean((-2, -1))), dim=-1)


class LSELayer(nn.Module):
    """y_k = ε·log Σ_j exp((W_kj x_j + b_kj)/ε) — an LSE layer with temperature ε."""

    def __init__(self, d_in: int, d_out: int, atoms: int, eps: float) -> None:
        super().__init__()
        self.lin = nn.Linear(d_in, d_out * atoms)
        self.d_out, self.atoms, self.eps = d_out, atoms, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.lin(x).unflatten(-1, (self.d_out, self.atoms))  # (B, d_out, atoms)
        return self.eps * torch.logsumexp(z / self.eps, dim=-1)  # (B, d_out)


class LSEMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = LSELayer(10, 16, 4, eps=0.5)
        self.act = nn.Softplus()
        self.l2 = LSELayer(16, 8, 3, eps=1.0)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.act(self.l2(self.act(self.l1(x))))), dim=-1)


ZOO_HF: dict[str, Callable[[], tuple[nn.Module, dict]]] = {
    "gpt2": gpt2, "bert": bert, "llama": llama, "mistral": mistral, "qwen2": qwen2,
    "qwen3": qwen3, "t5": t5, "vit": vit, "mamba": mamba, "mamba2": mamba2, "rwkv": rwkv,
    "jamba": jamba, "bloom": bloom, "falcon": falcon,
}


def plain(name: str) -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if name in ("lstm", "gru", "rnn"):
        cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[name]
        return SeqModel(cell).eval(), (_ids(),)
    if name == "hand_gru":
        return HandGRU().eval(), (torch.randn(B, 5, 6, generator=g),)
    if name == "resnet":
        return ResNetish().eval(), (torch.randn(B, 3, 8, 8, generator=g),)
    if name == "lse_mlp":
        return LSEMLP().eval(), (torch.randn(B, 10, generator=g),)
    raise KeyError(name)


PLAIN = ("lstm", "gru", "rnn", "hand_gru", "resnet", "lse_mlp")


# ----------------------------------------------------------------------------- shared helpers
def checksum(model: nn.Module) -> str:
    """sha256 over every parameter and buffer (names, dtypes and bytes)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in model.state_dict(keep_vars=False).items():
        flat = t.detach().contiguous().view(-1)
        h.update(name.encode() + str(t.dtype).encode())
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


def leaves(out: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def call(model: nn.Module, inputs: Any, **extra: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs, **extra)
    return model(*inputs)


def max_rel_error(ref: Any, out: Any) -> float:
    """max |Δ| / max(1, max|ref|) over all output tensors (the issue's parity measure)."""
    a, b = leaves(ref), leaves(out)
    assert len(a) == len(b), f"{len(a)} reference outputs vs {len(b)} converted outputs"
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape, (x.shape, y.shape)
        if not x.is_floating_point():
            assert torch.equal(x, y)
            continue
        scale = max(1.0, float(x.abs().max())) if x.numel() else 1.0
        worst = max(worst, float((x - y).abs().max()) / scale if x.numel() else 0.0)
    return worst
