"""A recorder that saw `generate()` with a KV cache (a prefill call [B, H, S], then one query per
step [B, H, 1]): summary(), nan_rows(), save() and to_dataframe(per="row") cover every call
(they raised HJPlugError: calls of different shapes cannot be concatenated)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hf_tiny import TINY

import hjplug


def _generated() -> tuple[hjplug.instrument.Recorder, dict[str, torch.Tensor]]:
    model, inputs = TINY["llama"]("sdpa")  # left-padded: row 0 has 4 pads, row 1 has 2
    kw = dict(max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0,
              eos_token_id=None)
    with torch.no_grad(), hjplug.instrument(model, stats=("entropy", "lse")) as rec:
        model.generate(**inputs, **kw)
    return rec, inputs


def test_summary_covers_prefill_and_decode_steps() -> None:
    rec, _ = _generated()
    calls = rec.calls("layers.0.attn.entropy")
    assert [tuple(c.shape) for c in calls] == [(3, 4, 11), (3, 4, 1), (3, 4, 1)]
    for h in (s for s in rec.summary() if s.name == "layers.0.attn"):
        ent = torch.cat([c[:, h.head].reshape(-1) for c in calls])  # every (call, batch, query)
        keys = torch.cat([c[:, h.head].reshape(-1) for c in rec.calls("layers.0.attn.keys")])
        qv = torch.cat([c.reshape(-1) for c in rec.calls("layers.0.attn.query_valid")])
        valid = (keys > 1) & qv
        assert h.rows == int(valid.sum()) and h.rows > 2 * 3  # decode rows are in
        assert h.mean_entropy == pytest.approx(float(ent[valid].double().mean()), rel=1e-6)
    assert rec.nan_rows() == {p: 0 for p in rec.prefixes() if f"{p}.nan" in rec}


def test_save_and_row_frame_after_generate(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    rec, _ = _generated()
    assert rec.save(tmp_path / "s.json").exists() and rec.save(tmp_path / "s.pt").exists()
    df = rec.to_dataframe(per="row")
    n = sum(c.numel() for c in rec.calls("layers.0.attn.entropy"))
    rows = df[df["name"] == "layers.0.attn"]
    assert len(rows) == n  # entropy undefined (NaN) exactly on rows with no visible key
    assert [math.isnan(x) for x in rows["entropy"]] == [k == 0 for k in rows["keys"]]
