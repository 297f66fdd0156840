"""Calling an hjplug.convert result with other keyword inputs or another dtype than the
example it was captured with: one HJPlugError that names the difference (no raw torch error)."""

from __future__ import annotations

import hjzoo
import pytest
import torch

import hjplug


@pytest.fixture(scope="module")
def converted():
    model, inputs = hjzoo.bert()
    return hjplug.convert(model, inputs), inputs


def test_missing_keyword_is_named(converted) -> None:
    hj, inputs = converted
    with pytest.raises(hjplug.HJPlugError, match=r"missing: attention_mask"):
        hj(input_ids=inputs["input_ids"])


def test_extra_keyword_is_named(converted) -> None:
    hj, inputs = converted
    with pytest.raises(hjplug.HJPlugError, match=r"not in the capture: output_attentions"):
        hj(**inputs, output_attentions=True)


def test_integer_dtype_mismatch_is_named(converted) -> None:
    hj, inputs = converted
    with pytest.raises(hjplug.HJPlugError, match=r"torch\.int64 example input input_ids, got "
                                                 r"torch\.float32"):
        hj(input_ids=inputs["input_ids"].float(), attention_mask=inputs["attention_mask"])


def test_matching_call_still_runs(converted) -> None:
    hj, inputs = converted
    with torch.no_grad():
        assert hj(**inputs).last_hidden_state.shape == (2, 8, 32)
