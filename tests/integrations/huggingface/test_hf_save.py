"""save_pretrained of an enabled model writes a normal checkpoint that loads without hjplug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from hf_tiny import TINY

import hjplug.integrations.huggingface as hf


def test_round_trip_and_load_without_hjplug(tmp_path: Path) -> None:
    ref, inputs = TINY["llama"]("sdpa")
    model = hf.enable(ref)
    with hf.deform(model, 0.5, layers=[1]):  # a deformation in force is not saved
        model.save_pretrained(tmp_path)
    text = (tmp_path / "config.json").read_text()
    assert "hjplug" not in text, "config.json must not require hjplug"
    with torch.no_grad():
        want = ref(**inputs).logits
    torch.save({"inputs": inputs, "logits": want}, tmp_path / "expected.pt")

    from transformers import AutoModelForCausalLM

    back = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    with torch.no_grad():
        assert torch.equal(back(**inputs).logits, want)
    again = hf.enable(back)
    with torch.no_grad():
        assert torch.equal(again(**inputs).logits, want)

    code = f"""
import sys
sys.modules["hjplug"] = None  # any import of hjplug now fails
import torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}).eval()
e = torch.load({str(tmp_path / "expected.pt")!r})
with torch.no_grad():
    out = m(**e["inputs"]).logits
assert m.config._attn_implementation != "hjplug", m.config._attn_implementation
assert (out - e["logits"]).abs().max() <= 1e-5 * e["logits"].abs().max()
print("ok")
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
    json.loads(text)
