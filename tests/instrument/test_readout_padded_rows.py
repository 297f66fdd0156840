"""LM-head readouts of a padded batch: the rows of padded positions are left out of the
summary's means (as padded attention queries are), the recorded per-position tensors keep them.
Checked against the entropy of softmax(logits) computed by hand in fp64."""

from __future__ import annotations

import copy
import math

import torch
from instr_models import gpt2

import hjplug


def test_lm_head_summary_excludes_padded_positions() -> None:
    model, inputs = gpt2()  # right padding: row 0 has 3 pad positions, row 1 has 1
    real = inputs["attention_mask"].bool()  # [B, S]
    twin = copy.deepcopy(model).double()
    with torch.no_grad():
        logits = twin(**inputs).logits  # [B, S, V]
    ent = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)  # [B, S]
    with torch.no_grad(), hjplug.instrument(model, stats=("entropy",)) as rec:
        model(**inputs)
    (head,) = [s for s in rec.summary() if s.name == "readout.lm_head"]
    assert rec["readout.lm_head.entropy"].shape == real.shape  # every position recorded
    assert head.rows == int(real.sum())
    assert math.isclose(head.mean_entropy, float(ent[real].mean()), rel_tol=1e-5)
