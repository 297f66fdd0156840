"""LSE / softmax readouts and recurrent σ gates, instrumented by forward hooks (exact: §1, §4).

Readout (LM head over the vocabulary, classifier head, MoE router): logits z = W x + b [..., N],
ε = 1 (temperature), atoms W_j = rows of the weight: lse, H, H/log N, gap, top-k and curvature
‖Cov_π(W)‖₂/ε ≤ max_j ‖W_j‖²/ε of f(x) = LSE(W x + b) in the readout input x.

Gates of nn.LSTM / nn.GRU (one layer, unidirectional, unpacked input) and nn.LSTMCell /
nn.GRUCell (also as FX lstm_cell / gru_cell steps, `cell_gate_preacts`): each σ(z) is the Gibbs
weight of the 2-atom LSE {z, 0} with ε = 1 (structural reading of the cell; exact for the gate
itself): lse = softplus(z), H = softplus(z) − z·σ(z), k = 2, gap Δ/ε = |z|. Gate
pre-activations are recomputed from the hooked inputs and the cell weights.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hjplug.instrument.recorder import Recorder
from hjplug.instrument.stats import covariance_norm, gap_from_topk, logits_stats

__all__ = ["attach_readouts", "cell_gate_preacts", "find_gates", "find_readouts",
           "fused_gate_preacts", "gate_stats", "readout_stats"]

_MOE = re.compile(r"moe|sparse|expert|router", re.IGNORECASE)
GATES = {"LSTM": ("input", "forget", None, "output"), "GRU": ("reset", "update", None)}


def find_readouts(model: nn.Module) -> list[tuple[str, str, nn.Module]]:
    """(role, path, module): lm_head, classifier, router{j} (a `gate` / `router` with a 2-D weight
    inside a mixture-of-experts block)."""
    names = {id(m): n for n, m in model.named_modules()}
    out: list[tuple[str, str, nn.Module]] = []
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Linear) and id(head) in names:
        out.append(("lm_head", names[id(head)], head))
    j = 0
    parents = dict(model.named_modules())
    for path, mod in model.named_modules():
        last = path.rsplit(".", 1)[-1]
        if isinstance(mod, nn.Linear) and last in ("classifier", "score") and mod is not head:
            out.append(("classifier", path, mod))
        w = getattr(mod, "weight", None)
        parent = parents.get(path.rsplit(".", 1)[0]) if "." in path else None
        if last in ("gate", "router") and isinstance(w, Tensor) and w.dim() == 2 and (
                parent is not None and _MOE.search(type(parent).__name__)):
            out.append((f"router{j}", path, mod))
            j += 1
    return out


def readout_stats(z: Tensor, weight: Tensor | None, rec_stats: tuple[str, ...], topk: int
                  ) -> dict[str, Tensor]:
    """Statistics of the readout logits z [..., N] (ε = 1)."""
    need_top = max(topk if "topk" in rec_stats else 0, 2 if "gap" in rec_stats else 0)
    vals = logits_stats(z, need_top)
    vals["epsilon"] = torch.ones(1, dtype=vals["lse"].dtype, device=z.device)
    vals["value"] = vals["lse"]
    if need_top:
        tw = vals["topk_weights"]
        if tw.shape[-1] >= 2:
            vals["gap"], vals["gap_ratio"] = gap_from_topk(tw, vals["keys"])
        vals["topk_weights"] = tw[..., :topk]
        vals["topk_indices"] = vals["topk_indices"][..., :topk]
    if "curvature" in rec_stats and weight is not None:
        lead, N = z.shape[:-1], z.shape[-1]
        zf = z.detach().reshape(1, -1, N).float()
        p = torch.softmax(zf, dim=-1)  # [1, R, N]
        curv, bound = covariance_norm(p, weight.detach().unsqueeze(0),
                                      torch.isfinite(zf), torch.ones(1, device=z.device))
        vals["curvature"], vals["curvature_bound"] = curv.reshape(lead), bound.reshape(lead)
    return vals


def gate_stats(z: Tensor) -> dict[str, Tensor]:
    """σ(z) as the 2-atom Gibbs weight of {z, 0} (ε = 1), elementwise."""
    z = z.float()
    sp = F.softplus(z)  # lse of {z, 0}
    ent = sp - z * torch.sigmoid(z)
    keys = torch.full_like(z, 2, dtype=torch.long)
    nan = torch.isnan(z)
    return {"epsilon": torch.ones(1, device=z.device), "lse": sp, "value": sp, "entropy": ent,
            "normalized_entropy": ent / math.log(2.0), "keys": keys, "nan": nan,
            "gap": z.abs(), "gap_ratio": z.abs() / math.log(2.0)}


def find_gates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(p, m) for p, m in model.named_modules()
            if isinstance(m, nn.LSTM | nn.GRU | nn.LSTMCell | nn.GRUCell)]


def _gate_preacts(mod: nn.Module, args: tuple[Any, ...], output: Any) -> dict[str, Tensor] | None:
    """Gate pre-activations [B, T, U] (cells: [B, U]) or None when the layout is unsupported."""
    x = args[0]
    if not isinstance(x, Tensor):
        return None  # PackedSequence
    kind = "LSTM" if isinstance(mod, nn.LSTM | nn.LSTMCell) else "GRU"
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    if isinstance(mod, nn.LSTMCell | nn.GRUCell):
        hx = args[1] if len(args) > 1 and args[1] is not None else None
        h = (hx[0] if isinstance(hx, tuple) else hx) if hx is not None else x.new_zeros(
            (*x.shape[:-1], mod.hidden_size))
        seq_x, seq_h = x.unsqueeze(-2), h.unsqueeze(-2)  # [B, 1, ·]
        w_ih, w_hh, b_ih, b_hh = mod.weight_ih, mod.weight_hh, mod.bias_ih, mod.bias_hh
    else:
        if not isinstance(mod, nn.LSTM | nn.GRU):
            return None
        if mod.num_layers != 1 or mod.bidirectional or mod.proj_size:
            return None
        out = output[0]
        if x.dim() == 2:
            x, out = x.unsqueeze(0 if mod.batch_first else 1), out.unsqueeze(
                0 if mod.batch_first else 1)
        if not mod.batch_first:
            x, out = x.transpose(0, 1), out.transpose(0, 1)  # [B, T, ·]
        hx = args[1] if len(args) > 1 and args[1] is not None else None
        h0 = (hx[0] if isinstance(hx, tuple) else hx) if hx is not None else None
        h0 = out.new_zeros(out.shape[0], 1, out.shape[-1]) if h0 is None else (
            h0.reshape(-1, out.shape[0], out.shape[-1])[0].unsqueeze(1))
        seq_x, seq_h = x, torch.cat([h0, out[:, :-1]], dim=1)  # h_{t−1}
        w_ih, w_hh = cast(Tensor, mod.weight_ih_l0), cast(Tensor, mod.weight_hh_l0)
        b_ih = cast("Tensor | None", getattr(mod, "bias_ih_l0", None))
        b_hh = cast("Tensor | None", getattr(mod, "bias_hh_l0", None))
    res = _preacts(kind, seq_x, seq_h, (w_ih, w_hh, b_ih, b_hh))
    if isinstance(mod, nn.LSTMCell | nn.GRUCell):
        res = {n: t.squeeze(-2) for n, t in res.items()}
    return res


def _preacts(kind: str, seq_x: Tensor, seq_h: Tensor, w: tuple[Any, ...]) -> dict[str, Tensor]:
    """σ-gate pre-activations W_ih x_t + b_ih + W_hh h_{t−1} + b_hh per gate, [B, T, U] each.
    w: (W_ih, W_hh, b_ih or None, b_hh or None)."""
    gi = F.linear(seq_x, w[0], w[2])  # [B, T, G·U]
    gh = F.linear(seq_h, w[1], w[3])
    names = GATES[kind]
    gis, ghs = gi.chunk(len(names), -1), gh.chunk(len(names), -1)
    return {n: a + b for n, a, b in zip(names, gis, ghs, strict=True) if n is not None}


def fused_gate_preacts(op: str, args: tuple[Any, ...], output: Any) -> dict[str, Tensor] | None:
    """Gate pre-activations [B, T, U] of a fused aten.lstm / aten.gru call (an FX recurrent
    step's arguments: input, hx, params, has_biases, layers, dropout, train, bidirectional,
    batch_first), or None for a layout not instrumented (multi-layer, bidirectional, projected,
    another op); aten.lstm_cell / gru_cell calls: `cell_gate_preacts`."""
    if op in ("lstm_cell", "gru_cell"):
        return cell_gate_preacts(op, args)
    kind = {"lstm": "LSTM", "gru": "GRU"}.get(op)
    if kind is None or len(args) < 9 or not isinstance(output, tuple | list):
        return None
    x, hx, params, has_biases, layers, _drop, _train, bidir, batch_first = args[:9]
    if int(layers) != 1 or bidir or len(params) != (4 if has_biases else 2):
        return None
    out = output[0]
    if not batch_first:
        x, out = x.transpose(0, 1), out.transpose(0, 1)  # [B, T, ·]
    h0 = hx[0] if isinstance(hx, list | tuple) else hx  # [1, B, U]
    seq_h = torch.cat([h0[0].unsqueeze(1), out[:, :-1]], dim=1)  # h_{t−1}
    w = (*params, None, None) if not has_biases else tuple(params)
    return _preacts(kind, x, seq_h, w)


def cell_gate_preacts(op: str, args: tuple[Any, ...]) -> dict[str, Tensor] | None:
    """Gate pre-activations z = W_ih x + b_ih + W_hh h + b_hh [B, U] of one aten.lstm_cell /
    gru_cell call (input, hx, w_ih, w_hh[, b_ih, b_hh]; LSTM hx = (h, c)), or None."""
    kind = {"lstm_cell": "LSTM", "gru_cell": "GRU"}.get(op)
    if kind is None or len(args) < 4 or not isinstance(args[0], Tensor):
        return None
    x, hx, w_ih, w_hh = args[:4]
    h = hx[0] if isinstance(hx, list | tuple) else hx
    b = tuple(args[4:6]) if len(args) >= 6 else (None, None)
    return _preacts(kind, x, h, (w_ih, w_hh, *b))


def _note_not_instrumented(rec: Recorder, i: int, path: str, why: str = "packed, multi-layer, "
                           "bidirectional or projected recurrent block") -> None:
    note = f"gates.{i} ({path}): layout not instrumented ({why})"
    if note not in rec.notes:
        rec.notes.append(note)


def attach_readouts(model: nn.Module, rec: Recorder, stack: ExitStack) -> None:
    """Forward hooks on every readout and recurrent block (removed when `stack` closes)."""
    for role, path, mod in find_readouts(model):
        weight = getattr(mod, "weight", None)

        def hook(m: nn.Module, args: tuple[Any, ...], output: Any, role: str = role,
                 path: str = path, weight: Any = weight) -> None:
            z = output if isinstance(output, Tensor) else None
            if z is None or weight is None or z.shape[-1] != weight.shape[0]:
                z = F.linear(args[0], weight, getattr(m, "bias", None))
            with torch.no_grad():
                rec.put(f"readout.{role}", path, "readout",
                        readout_stats(z.detach(), weight, rec.stats, rec.topk))
        stack.callback(mod.register_forward_hook(hook).remove)
    for i, (path, mod) in enumerate(find_gates(model)):
        stack.callback(mod.register_forward_hook(_gate_hook(rec, i, path)).remove)


def _gate_hook(rec: Recorder, i: int, path: str) -> Callable[..., None]:
    def hook(m: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        with torch.no_grad():
            pre = _gate_preacts(m, args, output)
        if pre is None:
            _note_not_instrumented(rec, i, path)
            return
        for gate, z in pre.items():
            rec.put(f"gates.{i}.{gate}", path, "gate", gate_stats(z.detach()))
    return hook
