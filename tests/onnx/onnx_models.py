"""Small models for the ONNX-pass tests: torch modules (exported with dynamo) and hand-built
ONNX graphs (onnx.helper) for ops torch does not emit."""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from torch import nn


class Attn(nn.Module):
    """One hand-written attention block: scale by Div or Mul, mask Add before or after the
    scale (or masked_fill → Where), Kᵀ transposed late or pre-transposed, scale on q."""

    def __init__(self, d: int, heads: int, scale: str, mask: str, kt: str) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.h, self.scale, self.mask, self.kt = heads, scale, mask, kt

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        dh = d // self.h
        q = self.q(x).view(b, t, self.h, dh).transpose(1, 2)  # (b, h, t, dh)
        v = self.v(x).view(b, t, self.h, dh).transpose(1, 2)
        if self.kt == "pre":
            kt = self.k(x).view(b, t, self.h, dh).permute(0, 2, 3, 1)  # (b, h, dh, t)
        else:
            kt = self.k(x).view(b, t, self.h, dh).transpose(1, 2).transpose(-1, -2)
        if self.scale == "q":
            q = q * 0.5
        s = q @ kt  # (b, h, t, t)
        if self.mask == "before":
            s = s + mask
        if self.scale == "div":
            s = s / math.sqrt(dh)
        elif self.scale == "mul":
            s = s * 0.25
        if self.mask == "after":
            s = s + mask
        elif self.mask == "fill":
            s = s.masked_fill(mask < -1.0, -1e4)
        p = s.softmax(-1)
        return x + self.o((p @ v).transpose(1, 2).reshape(b, t, d))


# (name, scale, mask, kt, expected ε) — d = 16, 2 heads, d_head = 8
ATTN_VARIANTS = (
    ("div_after_late", "div", "after", "late", math.sqrt(8)),
    ("mul_before_pre", "mul", "before", "pre", 4.0),
    ("div_before_pre", "div", "before", "pre", math.sqrt(8)),
    ("q_scaled_after", "q", "after", "late", 2.0),
    ("mul_fill_late", "mul", "fill", "late", 4.0),
    ("unscaled_after", "none", "after", "pre", 1.0),
)


class AttnStack(nn.Module):
    """Every ATTN_VARIANTS block in sequence (one export covers all variants)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleDict({n: Attn(16, 2, s, m, k) for n, s, m, k, _ in ATTN_VARIANTS})

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks.values():
            x = blk(x, mask)
        return x


class MLPHead(nn.Module):
    """Two residual MLP blocks, an elementwise x + x², a temperature log-softmax head."""

    def __init__(self, d: int = 8, classes: int = 5) -> None:
        super().__init__()
        self.f1 = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.f2 = nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.f1(x)
        x = x + self.f2(x)
        z = x + x * x  # elementwise: not a residual block
        w = x + y  # independent operands: not a residual block
        return torch.log_softmax(self.head(z) / 2.0, dim=-1), w


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.gru = nn.GRU(8, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return y


def export(module: nn.Module, args: tuple, path) -> None:
    """torch.onnx.export(dynamo=True) of `module` in eval mode to `path`."""
    module.eval()
    with torch.no_grad():
        prog = torch.onnx.export(module, args, dynamo=True, verbose=False)
    prog.save(str(path))


# ---- hand-built graphs ------------------------------------------------------------------------
def _init(name: str, a: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(a.astype(np.float32), name)


def _model(nodes, inputs, outputs, inits=(), opset=23, ms=False, ir=10) -> onnx.ModelProto:
    ops = [h.make_opsetid("", opset)] + ([h.make_opsetid("com.microsoft", 1)] if ms else [])
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=ops, ir_version=ir)


def _vi(name: str, shape, t: int = T.FLOAT) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, t, shape)


def opset23_attention(scale: float | None = None) -> onnx.ModelProto:
    """Attention(Q, K, V) with 4-D (B, 2 heads, S, 8) inputs; `scale` attribute optional."""
    attrs = {} if scale is None else {"scale": scale}
    node = h.make_node("Attention", ["Q", "K", "V"], ["Y"], name="attn", **attrs)
    shp = [2, 2, 5, 8]
    return _model([node], [_vi("Q", shp), _vi("K", shp), _vi("V", shp)], [_vi("Y", shp)])


def ms_attention() -> onnx.ModelProto:
    """com.microsoft.Attention: input (2, 5, 16), packed QKV weights (16, 48), 4 heads."""
    rng = np.random.default_rng(0)
    node = h.make_node("Attention", ["X", "W", "B"], ["Y"], domain="com.microsoft",
                       num_heads=4, name="ms_attn")
    return _model([node], [_vi("X", [2, 5, 16])], [_vi("Y", [2, 5, 16])],
                  [_init("W", rng.standard_normal((16, 48)) * 0.2),
                   _init("B", rng.standard_normal(48) * 0.1)], opset=17, ms=True)


def ms_mha(scale: float = 0.0) -> onnx.ModelProto:
    """com.microsoft.MultiHeadAttention on (2, 5, 16) q, k, v with 2 heads."""
    node = h.make_node("MultiHeadAttention", ["Q", "K", "V"], ["Y"], domain="com.microsoft",
                       num_heads=2, scale=scale, name="mha")
    s = [2, 5, 16]
    return _model([node], [_vi("Q", s), _vi("K", s), _vi("V", s)], [_vi("Y", s)], opset=17,
                  ms=True)


def ms_gqa() -> onnx.ModelProto:
    """com.microsoft.GroupQueryAttention: 4 query / 2 kv heads of size 8, no past."""
    node = h.make_node(
        "GroupQueryAttention", ["Q", "K", "V", "", "", "seqlens_k", "total_len"],
        ["Y", "present_k", "present_v"], domain="com.microsoft", num_heads=4, kv_num_heads=2,
        name="gqa")
    ins = [_vi("Q", [1, 5, 32]), _vi("K", [1, 5, 16]), _vi("V", [1, 5, 16]),
           _vi("seqlens_k", [1], T.INT32), _vi("total_len", [], T.INT32)]
    outs = [_vi("Y", [1, 5, 32]), _vi("present_k", [1, 2, 5, 8]), _vi("present_v", [1, 2, 5, 8])]
    return _model([node], ins, outs, opset=17, ms=True)


def lse_graph() -> onnx.ModelProto:
    """0.5·ReduceLogSumExp(Z / 0.5) over the last axis (an LSE layer at temperature ε = 0.5),
    plus a plain Softmax readout of X·W."""
    rng = np.random.default_rng(1)
    nodes = [
        h.make_node("Div", ["Z", "temp"], ["zs"], name="div_t"),
        h.make_node("ReduceLogSumExp", ["zs", "axes"], ["lse"], keepdims=0, name="lse"),
        h.make_node("Mul", ["lse", "temp"], ["Y"], name="mul_t"),
        h.make_node("MatMul", ["Z", "W"], ["logits"], name="head"),
        h.make_node("Softmax", ["logits"], ["P"], axis=-1, name="readout"),
    ]
    inits = [_init("temp", np.array(0.5)), numpy_helper.from_array(np.array([-1], np.int64),
                                                                   "axes"),
             _init("W", rng.standard_normal((6, 3)))]
    return _model(nodes, [_vi("Z", [2, 6])], [_vi("Y", [2]), _vi("P", [2, 3])], inits,
                  opset=18)


def rnn_graph() -> onnx.ModelProto:
    """An ONNX RNN (tanh) op with 8 hidden units over (T=5, B=2, 4) inputs."""
    rng = np.random.default_rng(2)
    node = h.make_node("RNN", ["X", "W", "R", "B"], ["Y", "Yh"], hidden_size=8, name="rnn")
    inits = [_init("W", rng.standard_normal((1, 8, 4)) * 0.3),
             _init("R", rng.standard_normal((1, 8, 8)) * 0.3),
             _init("B", rng.standard_normal((1, 16)) * 0.1)]
    return _model([node], [_vi("X", [5, 2, 4])], [_vi("Y", [5, 1, 2, 8]), _vi("Yh", [1, 2, 8])],
                  inits, opset=17)


def softmax_near_misses() -> onnx.ModelProto:
    """Three softmaxes that are not attention steps: over axis 1 of Q·Kᵀ, of a MatMul with a
    constant weight (a readout), and one whose weights are never contracted with values."""
    rng = np.random.default_rng(3)
    nodes = [
        h.make_node("MatMul", ["Q", "KT"], ["s"], name="qk"),
        h.make_node("Softmax", ["s"], ["p1"], axis=1, name="sm_axis1"),
        h.make_node("MatMul", ["p1", "V"], ["Y1"], name="pv"),
        h.make_node("MatMul", ["X", "W"], ["logits"], name="head"),
        h.make_node("Softmax", ["logits"], ["p2"], axis=-1, name="sm_readout"),
        h.make_node("MatMul", ["p2", "V2"], ["Y2"], name="mix"),
        h.make_node("MatMul", ["Q", "KT"], ["s3"], name="qk3"),
        h.make_node("Softmax", ["s3"], ["Y3"], axis=-1, name="sm_probs"),
    ]
    ins = [_vi("Q", [2, 2, 5, 4]), _vi("KT", [2, 2, 4, 5]), _vi("V", [2, 2, 5, 4]),
           _vi("X", [3, 6]), _vi("V2", [4, 2])]
    outs = [_vi("Y1", [2, 2, 5, 4]), _vi("Y2", [3, 2]), _vi("Y3", [2, 2, 5, 5])]
    return _model(nodes, ins, outs, [_init("W", rng.standard_normal((6, 4)))], opset=17)


def non_convex_attention() -> onnx.ModelProto:
    """softmax(Q·Kᵀ)·V with V = Relu(π): a path leaves the block and re-enters it."""
    nodes = [
        h.make_node("MatMul", ["Q", "KT"], ["s"], name="qk"),
        h.make_node("Softmax", ["s"], ["p"], axis=-1, name="sm"),
        h.make_node("Relu", ["p"], ["v"], name="relu"),
        h.make_node("MatMul", ["p", "v"], ["Y"], name="pv"),
    ]
    ins = [_vi("Q", [2, 5, 4]), _vi("KT", [2, 4, 5])]
    return _model(nodes, ins, [_vi("Y", [2, 5, 5])], opset=17)


def einsum_per_head_attention() -> onnx.ModelProto:
    """Einsum attention with a per-head temperature: softmax(einsum(q, k) · s_h) · v, with
    s = (0.5, 0.25) over 2 heads (shape (1, 2, 1, 1)) → ε = (2, 4)."""
    nodes = [
        h.make_node("Einsum", ["Q", "K"], ["s"], equation="bhqd,bhkd->bhqk", name="qk"),
        h.make_node("Mul", ["s", "temp"], ["st"], name="scale"),
        h.make_node("Softmax", ["st"], ["p"], axis=-1, name="sm"),
        h.make_node("Einsum", ["p", "V"], ["Y"], equation="bhqk,bhkd->bhqd", name="pv"),
    ]
    shp = [2, 2, 5, 4]
    temp = _init("temp", np.array([0.5, 0.25]).reshape(1, 2, 1, 1))
    return _model(nodes, [_vi("Q", shp), _vi("K", shp), _vi("V", shp)], [_vi("Y", shp)],
                  [temp], opset=17)


def if_reads_softmax() -> onnx.ModelProto:
    """A softmax readout whose output is read only inside the branches of an If (outer scope)."""
    rng = np.random.default_rng(4)
    then_g = h.make_graph([h.make_node("Identity", ["P"], ["t"])], "then", [], [_vi("t", [3, 4])])
    else_g = h.make_graph([h.make_node("Neg", ["P"], ["e"])], "else", [], [_vi("e", [3, 4])])
    nodes = [
        h.make_node("MatMul", ["X", "W"], ["logits"], name="head"),
        h.make_node("Softmax", ["logits"], ["P"], axis=-1, name="readout"),
        h.make_node("If", ["C"], ["Y"], then_branch=then_g, else_branch=else_g, name="branch"),
    ]
    ins = [_vi("X", [3, 6]), _vi("C", [], T.BOOL)]
    return _model(nodes, ins, [_vi("Y", [3, 4])], [_init("W", rng.standard_normal((6, 4)))],
                  opset=17)
