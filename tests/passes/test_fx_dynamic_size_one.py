"""dynamic=True with an example of batch size or length 1: torch.export fixes every dynamic size
whose example is 0 or 1 (its 0/1 specialisation), not the model. The capture note and the error
at another size say so and what to do (an example ≥ 2), instead of blaming the model; inputs
hjplug.convert synthesises for dynamic=True have batch 2, so their batch stays dynamic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import hjplug
from hjplug.passes import capture

VOCAB, E = 31, 8


class Tagger(nn.Module):
    """ids [B, S] → softmax over tags [B, S, 5]; a `config` but no Hugging Face class."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=VOCAB)
        self.embed = nn.Embedding(VOCAB, E)
        self.head = nn.Linear(E, 5)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        h = self.embed(input_ids)  # [B, S, E]
        if attention_mask is not None:
            h = h * attention_mask.unsqueeze(-1).to(h.dtype)
        return torch.softmax(self.head(h), -1)  # [B, S, 5]


def _ids(b: int, s: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, s), generator=torch.Generator().manual_seed(b * 100 + s))


def test_size_one_example_is_blamed_on_export_not_the_model() -> None:
    torch.manual_seed(0)
    model = Tagger().eval()
    notes = capture(model, {"input_ids": _ids(1, 6)}, dynamic=True).notes
    (note,) = [n for n in notes if "specialised" in n]
    assert "'input_ids' dim 0 = 1" in note and "0/1 specialisation" in note and "≥ 2" in note
    assert "the model fixes" not in note
    hj = hjplug.convert(model, {"input_ids": _ids(1, 6)}, dynamic=True)
    with pytest.raises(hjplug.HJPlugError, match="0/1 specialisation"):
        hj(input_ids=_ids(3, 6))
    x = _ids(1, 4)  # the length stayed dynamic
    with torch.no_grad():
        assert torch.equal(hj(input_ids=x), model(input_ids=x))


def test_synthesised_inputs_keep_the_batch_dynamic() -> None:
    torch.manual_seed(0)
    model = Tagger().eval()
    hj = hjplug.convert(model, dynamic=True)
    assert not [n for n in hj.capture_notes if "specialised" in n], hj.capture_notes
    for b, s in ((1, 5), (3, 9)):
        x = {"input_ids": _ids(b, s), "attention_mask": torch.ones(b, s, dtype=torch.long)}
        with torch.no_grad():
            assert torch.equal(hj(**x), model(**x))
