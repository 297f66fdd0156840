"""HJModule: what `hjplug.convert` returns — the rewritten graph, its HJ steps and its report."""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from hjplug.modules.base import HJStep
from hjplug.spec import HJSpec

__all__ = ["HJModule"]


class HJModule(nn.Module):
    """Call it like the original model. `steps` maps each block path to its HJStep module.

    `injected` are the keyword arguments the capture fixed (e.g. use_cache=False); `open_blocks`
    the recognised blocks with no step (open activations), kept so `hjplug.inspect` reports them;
    `dynamic`: converted with dynamic=True; `capture_notes`: the capture's notes.
    """

    def __init__(
        self, graph_module: fx.GraphModule, *, source_class: str, injected: dict[str, Any],
        open_blocks: tuple[HJSpec, ...] = (), order: tuple[str, ...] = (),
        dynamic: bool = False, capture_notes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.source_class = source_class
        self.injected = dict(injected)
        self.open_blocks = tuple(open_blocks)
        self.block_order = tuple(order)
        self.dynamic = dynamic
        self.capture_notes = tuple(capture_notes)
        self.training = False

    @property
    def steps(self) -> dict[str, HJStep]:
        return {m.spec.path: m for m in self.graph_module.children() if isinstance(m, HJStep)}

    def specs(self) -> list[HJSpec]:
        """Every block's record (current ε), in the original graph order."""
        specs = [s.spec for s in self.steps.values()] + list(self.open_blocks)
        rank = {p: i for i, p in enumerate(self.block_order)}
        return sorted(specs, key=lambda s: rank.get(s.path, len(rank)))

    def set_epsilon(self, value: float, kind: str | None = None) -> None:
        """Set ε on every step (of one `kind`) that has a viscosity to set."""
        for step in self.steps.values():
            if (kind is None or step.spec.kind == kind) and step.fixed_epsilon is None:
                step.epsilon = value

    def reset_epsilon(self) -> None:
        for step in self.steps.values():
            step.reset_epsilon()

    def train(self, mode: bool = True) -> HJModule:
        """The graph was captured in eval mode (dropout off); only eval is supported."""
        if mode:
            from hjplug.errors import HJPlugError

            raise HJPlugError("an HJModule is captured in eval mode (dropout off); training mode "
                              "is not supported — convert again to change the capture.")
        self.training = False
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.graph_module(*args, **{**self.injected, **kwargs})
        except AssertionError as exc:  # torch.export's input guards
            if "Guard failed" not in str(exc) and "Expected input" not in str(exc):
                raise
            from hjplug.errors import HJPlugError

            fix = ", or with hjplug.convert(..., dynamic=True)."
            if self.dynamic:  # dynamic was asked for: say which sizes export fixed anyway
                why = [n for n in self.capture_notes if "dynamic" in n]
                fix = ": " + ("; ".join(why) or "dynamic=True, but torch.export specialised "
                              "this size (the model fixes it)") + "."
            raise HJPlugError(
                f"{self.source_class} was converted for other input shapes ({exc}); convert "
                f"with example inputs of these shapes{fix}"
            ) from exc
        except ValueError as exc:  # torch.export's in_spec: other keyword inputs than captured
            expected = self._captured_keywords()
            if "keyword mismatch" not in str(exc) or expected is None:
                raise
            from hjplug.errors import HJPlugError

            given = {**self.injected, **kwargs}
            missing = [k for k in expected if k not in given]
            extra = [k for k in given if k not in expected]
            raise HJPlugError(
                f"{self.source_class} was converted with the keyword inputs {expected}; "
                + "; ".join(f"{what}: {', '.join(ks)}" for what, ks in (
                    ("missing", missing), ("not in the capture", extra)) if ks)
                + ". Call it with the example's keywords, or convert again with example inputs "
                "that hold the ones you need.") from exc
        except RuntimeError as exc:  # e.g. fp64 inputs into an fp32 capture (mat1 / mat2 dtype)
            bad = self._dtype_mismatch(args, kwargs)
            if bad is None:
                raise
            from hjplug.errors import HJPlugError

            again = (", or convert the model in that dtype (model.to(...)) with example inputs "
                     "of that dtype") if bad[1].is_floating_point else ""
            raise HJPlugError(
                f"{self.source_class} was converted with {bad[1]} example input {bad[0]}, got "
                f"{bad[2]}; pass {bad[1]} inputs (x.to({bad[1]})){again}.") from exc

    def _captured_keywords(self) -> list[str] | None:
        """The keyword inputs of the capture (torch.export's in_spec), or None if unknown."""
        spec: Any = getattr(self.graph_module, "_in_spec", None)
        try:  # (args, kwargs) spec; the kwargs child's context is the list of keywords
            context = spec.child(1).context if hasattr(spec, "child") else \
                spec.children_specs[1].context
        except (AttributeError, IndexError, TypeError):
            return None
        return [str(k) for k in context] if isinstance(context, list | tuple) else None

    def _dtype_mismatch(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                        ) -> tuple[int | str, Any, Any] | None:
        """(input index or keyword, captured dtype, given dtype) of the first tensor input whose
        dtype differs from the one captured, or None."""
        import torch

        holders = [n for n in self.graph_module.graph.nodes if n.op == "placeholder"]
        named = {n.name: n for n in holders}
        pairs: list[tuple[int | str, Any, Any]] = [
            (i, a, n) for i, (a, n) in enumerate(zip(args, holders, strict=False))]
        pairs += [(k, a, named[k]) for k, a in kwargs.items() if k in named]
        for key, a, n in pairs:
            val = n.meta.get("val")
            if (isinstance(a, torch.Tensor) and isinstance(val, torch.Tensor)
                    and a.dtype != val.dtype):
                return key, val.dtype, a.dtype
        return None

    def extra_repr(self) -> str:
        return f"source={self.source_class}, steps={len(self.steps)}"
