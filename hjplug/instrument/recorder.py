"""Recorder: the tensors one `hjplug.instrument(...)` context collected, by canonical hook name.

    rec["layers.3.attn.entropy"]   [B, H, Sq] (calls of equal shape are concatenated on dim 0)
    rec.calls("layers.3.attn.entropy")  one tensor per attention call (e.g. generation steps)
    rec.summary()                  per layer × head: ε, mean H/log k, particle / mixed / wave
    rec.to_dataframe(per="head" | "row"), rec.save(path)   (.json: summary; else torch.save)

Hook names and statistics are documented in `hjplug.instrument.names`.

Padded batches: when the top-level forward of a Hugging Face (decoder-only or encoder-only)
model or of an `hjplug.convert` result is called with a 2-D `attention_mask` [B, S] (1 = real
token; keyword, or positional for HF models), each attention call whose statistics are [B, H, S]
(self-attention over the whole input) — and each per-position readout [B, S] (an LM head) —
also records "<prefix>.query_valid", bool [B, S] (True = real query). Padded queries still see
the real keys (masks remove keys only), so their rows are excluded from the summary's valid
rows: `(keys > 1) & ~nan & query_valid`. Encoder-decoder HF models: each stack's own mask —
encoder self-attention rows by `attention_mask`, decoder self- and cross-attention rows (decoder
queries) by `decoder_attention_mask` (the encoder mask removes padded *keys* of cross-attention;
it never marks decoder rows). Multi-tower models (CLIP, …): the text mask never marks the rows
of a vision / audio tower. Converted models: each step's rows by the mask its captured graph
routes to it (hjplug.instrument._masks). Calls with another Sq (cached decode steps) and calls
without such a mask get all-True rows (once the entry exists, it has one tensor per "keys"
call). Recorded statistics themselves are unchanged (padded rows stay in
rec["layers.i.attn.entropy"]).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.file_mode import match_plain_write
from hjplug.instrument.names import ALWAYS, PRODUCES
from hjplug.instrument.records import HeadSummary, Summary, regime
from hjplug.instrument.stats import safe_mean

__all__ = ["Recorder", "UnknownHookError"]


class UnknownHookError(HJPlugError, KeyError):
    """A hook name the recorder holds no tensor for (the message lists those it holds)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class Recorder:
    """Collected statistics of one instrument context (see module docstring)."""

    def __init__(self, stats: tuple[str, ...], topk: int, source: str, grad: bool = False
                 ) -> None:
        self.stats = stats
        self.topk = topk
        self.source = source
        self.grad = grad  # keep recorded tensors on the autograd graph (instrument(grad=True))
        self.paths: dict[str, str] = {}  # prefix → module path
        self.kinds: dict[str, str] = {}  # prefix → attention | readout | gate
        self.notes: list[str] = []
        self._data: dict[str, list[Tensor]] = {}
        # top-level attention_mask of the model calls in progress (set by instrument())
        self.masks: list[Tensor | None] = []

    # ---------------------------------------------------------------- filling (adapters)
    def put(self, prefix: str, path: str, kind: str, values: dict[str, Tensor]) -> None:
        self.paths.setdefault(prefix, path)
        self.kinds.setdefault(prefix, kind)
        wanted = {n for s in self.stats for n in PRODUCES[s]} | set(ALWAYS)
        for name, t in values.items():
            if name in wanted:
                self._data.setdefault(f"{prefix}.{name}", []).append(
                    t if self.grad else t.detach())
        keys = values.get("keys")
        per_row = (kind == "attention" and keys is not None and keys.dim() == 3) or (
            kind == "readout" and keys is not None and keys.dim() == 2)  # [B, H, Sq] / [B, S]
        if per_row and "keys" in wanted:
            assert keys is not None
            self._put_query_valid(prefix, keys)

    def _put_query_valid(self, prefix: str, keys: Tensor) -> None:
        """Append this call's query validity [B, Sq] (see module docstring), keeping one entry
        per "keys" call once any call had a matching attention_mask (keys [B, H, Sq], or [B, S]
        for a per-position readout such as an LM head)."""
        qv = query_valid(self.masks, keys)
        name = f"{prefix}.query_valid"
        if qv is None and name not in self._data:
            return
        calls = self._data[f"{prefix}.keys"]
        got = self._data.setdefault(name, [])
        for t in calls[len(got):-1]:  # earlier calls recorded before any mask: all real
            got.append(_all_real(t))
        got.append(qv if qv is not None else _all_real(keys))

    # ---------------------------------------------------------------- reading
    def keys(self) -> list[str]:
        """Every hook name holding data, in recording order."""
        return list(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def calls(self, name: str) -> list[Tensor]:
        """One tensor per recorded call of hook `name`."""
        if name not in self._data:
            self._unknown(name)
        return list(self._data[name])

    def __getitem__(self, name: str) -> Tensor:
        ts = self.calls(name)
        if len(ts) == 1:
            return ts[0]
        if name.endswith(".epsilon"):
            first = ts[0]
            return first if all(torch.equal(first, t) for t in ts) else torch.stack(ts)
        if all(t.shape[1:] == ts[0].shape[1:] for t in ts):
            return torch.cat(ts, dim=0)
        raise HJPlugError(
            f"Recorder[{name!r}]: {len(ts)} calls with different shapes "
            f"({', '.join(str(tuple(t.shape)) for t in ts[:3])}, ...) cannot be concatenated; "
            f"use rec.calls({name!r}) for the list of per-call tensors.")

    def _unknown(self, name: str) -> None:
        held = self.keys()
        prefix = name.rsplit(".", 1)[0]
        near = [k for k in held if k.startswith(prefix + ".")] or held[:12]
        raise UnknownHookError(
            f"Recorder: no tensor recorded under {name!r} (expected a name of the form "
            f"'layers.<i>.attn.<stat>'; recorded stats: {', '.join(self.stats)}). "
            f"Held names include: {', '.join(near) or 'none (nothing ran inside the context)'}.")

    def prefixes(self) -> list[str]:
        return list(self.paths)

    def nan_rows(self) -> dict[str, int]:
        """Rows flagged NaN per prefix (0 everywhere for clean inputs)."""
        return {p: int(sum(t.sum() for t in self._data[f"{p}.nan"])) for p in self.paths
                if f"{p}.nan" in self._data}

    # ---------------------------------------------------------------- summaries
    def _opt(self, prefix: str, name: str) -> Tensor | None:
        """The statistic for summaries (detached). Calls of different shapes (a prefill, then
        one query per cached decode step) become one row per (call, batch, query): [B, H, Sq]
        → [Σ B·Sq, H, 1], [B, Sq] → [Σ B·Sq, 1] (the same for every statistic of a prefix)."""
        key = f"{prefix}.{name}"
        if key not in self._data:
            return None
        ts = self._data[key]
        if name != "epsilon" and any(t.shape[1:] != ts[0].shape[1:] for t in ts):
            return torch.cat([_as_rows(t.detach()) for t in ts])
        return self[key].detach()

    def summary(self) -> Summary:
        """Per layer × head (and per readout / gate): ε, means over valid rows, regime."""
        out: list[HeadSummary] = []
        for prefix, path in self.paths.items():
            ent = self._opt(prefix, "entropy")
            keys, nan = self._opt(prefix, "keys"), self._opt(prefix, "nan")
            if ent is None or keys is None or nan is None:
                continue
            kind = self.kinds[prefix]
            head_dim = 1 if kind == "attention" and ent.dim() == 3 else None
            eps = self._opt(prefix, "epsilon")
            n_heads = ent.shape[1] if head_dim else 1
            qv = self._opt(prefix, "query_valid")  # [B, Sq] or None
            for h in range(n_heads):
                def sel(t: Tensor | None, h: int = h, hd: int | None = head_dim
                        ) -> Tensor | None:
                    return None if t is None else (t[:, h] if hd else t)
                e, k, bad = sel(ent), sel(keys), sel(nan)
                assert e is not None and k is not None and bad is not None
                valid = (k > 1) & ~bad
                if qv is not None and qv.shape == valid.shape:
                    valid = valid & qv
                norm = sel(self._opt(prefix, "normalized_entropy"))
                lse = sel(self._opt(prefix, "lse"))
                ratio = sel(self._opt(prefix, "gap_ratio"))
                curv = sel(self._opt(prefix, "curvature"))
                bound = sel(self._opt(prefix, "curvature_bound"))
                mn = safe_mean(norm, valid) if norm is not None else math.nan
                eps_h = math.nan
                if eps is not None:
                    ev = eps.reshape(-1, eps.shape[-1])[-1]
                    eps_h = float(ev[h] if ev.numel() > h else ev[0])
                out.append(HeadSummary(
                    name=prefix, path=path, kind=kind, head=h, epsilon=eps_h,
                    rows=int(valid.sum()), nan_rows=int(bad.sum()),
                    mean_entropy=safe_mean(e, valid), mean_normalized_entropy=mn,
                    regime=regime(mn),
                    mean_lse=safe_mean(lse, valid & torch.isfinite(lse)) if lse is not None
                    else math.nan,
                    mean_gap_ratio=safe_mean(ratio, valid & torch.isfinite(ratio))
                    if ratio is not None else math.nan,
                    max_curvature=_max(curv, valid), curvature_bound=_max(bound, valid),
                ))
        return Summary(tuple(out))

    # ---------------------------------------------------------------- export
    def to_dataframe(self, per: str = "head") -> Any:
        """per="head": the summary table; per="row": one row per (hook, batch, head, query)
        with every recorded [B, H, Sq] statistic as a column. Needs pandas."""
        from hjplug.instrument._frames import frame

        where = "Recorder.to_dataframe"
        if per == "head":
            recs = self.summary().to_records()
            cols = {k: [r[k] for r in recs] for k in (recs[0] if recs else {"name": None})}
            return frame(cols if recs else {}, where)
        if per != "row":
            raise InvalidArgumentError("per", "'head' or 'row'", per, where=where)
        return frame(self._row_columns(), where)

    def _row_columns(self) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {"name": [], "batch": [], "head": [], "query": []}
        stats = ["lse", "value", "entropy", "normalized_entropy", "gap", "gap_ratio",
                 "curvature", "curvature_bound", "keys", "nan"]
        for s in stats:
            cols[s] = []
        for prefix in self.paths:
            if self.kinds[prefix] != "attention" or f"{prefix}.keys" not in self._data:
                continue
            b0 = 0  # batch index continues across calls (as rec[name] concatenates them)
            for c, keys in enumerate(self._data[f"{prefix}.keys"]):
                if keys.dim() != 3:
                    continue
                B, H, Sq = keys.shape
                b, h, q = torch.meshgrid(torch.arange(B) + b0, torch.arange(H),
                                         torch.arange(Sq), indexing="ij")
                b0 += B
                n = B * H * Sq
                cols["name"] += [prefix] * n
                cols["batch"] += b.reshape(-1).tolist()
                cols["head"] += h.reshape(-1).tolist()
                cols["query"] += q.reshape(-1).tolist()
                for s in stats:
                    ts = self._data.get(f"{prefix}.{s}", [])
                    cols[s] += ts[c].detach().reshape(-1).tolist() if len(ts) > c else (
                        [math.nan] * n)
        return {k: v for k, v in cols.items() if v and not all(
            isinstance(x, float) and math.isnan(x) for x in v)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file + os.replace): `.json` → summary and metadata;
        anything else → torch.save of {"stats": {name: tensor}, "summary", "paths", "meta"}."""
        target = Path(path)
        meta = {"source": self.source, "stats": list(self.stats), "topk": self.topk,
                "notes": list(self.notes)}
        summary = self.summary().to_records()

        def write(f: Any) -> None:
            if target.suffix == ".json":
                clean = [{k: _jsonable(v) for k, v in r.items()} for r in summary]
                payload = {"meta": meta, "paths": self.paths, "summary": clean,
                           "hooks": self.keys()}
                f.write(json.dumps(payload, indent=2, allow_nan=False).encode())
            else:
                stats: dict[str, Tensor | list[Tensor]] = {}
                for k in self.keys():
                    try:
                        stats[k] = self[k].detach()
                    except HJPlugError:
                        stats[k] = [t.detach() for t in self.calls(k)]
                torch.save({"stats": stats, "summary": summary, "paths": self.paths,
                            "meta": meta}, f)

        if target.is_dir():
            raise HJPlugError(f"Recorder.save: {target} is a directory; give a file path such "
                              f"as {target / 'stats.pt'} (or .json for the summary).")
        try:
            _atomic_write(target, write)
        except OSError as exc:  # a parent that is a file, no permission, disk full, …
            raise HJPlugError(f"Recorder.save: cannot write {target} ({exc.strerror or exc}); "
                              "choose a writable file path.") from exc
        return target


def query_valid(masks: list[Tensor | None], keys: Tensor) -> Tensor | None:
    """[B, Sq] bool for an attention call with statistics [B, H, Sq] (or a readout with [B, S])
    when the current mask (top of `masks`) is [B, Sq] (the whole input), else None."""
    m = masks[-1] if masks else None
    if m is None or keys.dim() not in (2, 3) or tuple(m.shape) != (keys.shape[0],
                                                                    keys.shape[-1]):
        return None
    return m.to(device=keys.device, dtype=torch.bool)


def _as_rows(t: Tensor) -> Tensor:
    """One call's statistic as rows: [B, H, Sq] → [B·Sq, H, 1]; [B, Sq] (or any other) →
    [B·Sq, 1]."""
    if t.dim() == 3:
        return t.transpose(1, 2).reshape(-1, t.shape[1], 1)
    return t.reshape(-1, 1)


def _all_real(keys: Tensor) -> Tensor:
    return torch.ones(keys.shape[0], keys.shape[-1], dtype=torch.bool, device=keys.device)


def _max(t: Tensor | None, valid: Tensor) -> float:
    if t is None:
        return math.nan
    ok = valid & torch.isfinite(t)
    return float(t[ok].max()) if bool(ok.any()) else math.nan


def _jsonable(x: Any) -> Any:
    """NaN / ±inf → None (strict JSON)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _atomic_write(target: Path, write: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        match_plain_write(tmp, target)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
