"""`hjplug.sweep` / `hjplug.attribute` refuse inputs the model cannot be called with (a string,
None, a number, a dict with non-string keys) with one message naming what was expected, what was
got and how the model is called — before anything is enabled, hooked or deformed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from instr_models import bert, hook_snapshot

import hjplug
from hjplug.errors import InvalidArgumentError


@pytest.mark.parametrize("bad", ["a sentence", None, 3, {0: torch.ones(2, 3)}],
                         ids=["str", "none", "int", "int-keys"])
@pytest.mark.parametrize("fn", ["sweep", "attribute"])
def test_bad_inputs_one_message(fn: str, bad: Any) -> None:
    model, _ = bert()
    from hjplug.integrations.huggingface import register

    register()
    before = hook_snapshot(model)
    with pytest.raises(InvalidArgumentError, match=r"hjplug\.(sweep|attribute): argument 'inputs' "
                       r"must be .*model\(\*\*inputs\).*; got"):
        if fn == "sweep":
            hjplug.sweep(model, bad, [0.5, 1.0])
        else:
            hjplug.attribute(model, bad, layer=0, head=0)
    assert hook_snapshot(model) == before


def test_good_input_forms_accepted() -> None:
    model, inputs = bert()
    ids = inputs["input_ids"]
    from transformers import BatchEncoding

    for form in (inputs, BatchEncoding(inputs), (ids,), [ids], ids):
        sw = hjplug.sweep(model, form, [1.0], folds=False, fixed_inputs=False)
        assert torch.isfinite(sw.entropy).all()
