"""An eval-mode nn.TransformerEncoder called with a padding mask (under no_grad) takes PyTorch's
fast path (nested tensors) and returns 0 at the padded positions; the captured graph and the
converted model compute those positions, as the encoder's standard (non-fast-path) forward does.
The capture says so in a note (inspect, the report record, the converted model), so a difference
there is not read as hjplug's error."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

import hjplug
from hjplug.passes import capture


def _encoder(nested: bool = True) -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested).eval()


def _inputs(padded: bool = True) -> dict[str, Any]:
    torch.manual_seed(1)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])  # right padding
    return {"src": torch.randn(2, 5, 16), **({"src_key_padding_mask": pad} if padded else {})}


def _fast_path_notes(notes: tuple[str, ...]) -> list[str]:
    return [n for n in notes if "fast path" in n]


def test_padding_mask_capture_notes_the_fast_path() -> None:
    got = capture(_encoder(), _inputs())
    notes = _fast_path_notes(got.notes)
    assert len(notes) == 1, got.notes
    note = notes[0]
    assert "nn.TransformerEncoder" in note and "(root)" in note
    assert "0 at padded positions" in note
    assert "standard (non-fast-path) forward" in note
    assert "torch.backends.mha.set_fastpath_enabled(False)" in note


def test_the_note_is_true_and_reaches_inspect_and_convert() -> None:
    model, inputs = _encoder(), _inputs()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fast = model(**inputs)
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            standard = model(**inputs)
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
        hj = hjplug.convert(model, inputs)
        out = hj(**inputs)
    assert bool((fast[1, 3:] == 0).all())  # the fast path's padded rows
    assert float((out - fast)[1, 3:].abs().max()) > 0.1  # what users would otherwise blame
    torch.testing.assert_close(out, standard, rtol=0, atol=1e-6)
    assert _fast_path_notes(hj.capture_notes)
    report = hjplug.inspect(model, inputs)
    assert _fast_path_notes(report.notes)
    assert _fast_path_notes(tuple(report.to_dict()["notes"]))


def test_no_note_without_the_fast_path() -> None:
    assert not _fast_path_notes(capture(_encoder(), _inputs(padded=False)).notes)
    assert not _fast_path_notes(capture(_encoder(nested=False), _inputs()).notes)


def test_nested_encoder_is_named_by_its_path() -> None:
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = _encoder()

        def forward(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor
                    ) -> torch.Tensor:
            return self.body(src, src_key_padding_mask=src_key_padding_mask)

    notes = _fast_path_notes(capture(Wrapper().eval(), _inputs()).notes)
    assert len(notes) == 1 and "'body'" in notes[0], notes
