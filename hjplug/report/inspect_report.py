"""InspectReport: what `hjplug.inspect` returns — one HJSpec row per block, plus near-misses."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hjplug.spec import HJSpec

__all__ = ["InspectReport", "NearMiss"]

COLUMNS = ("path", "kind", "Hamiltonian", "ε", "time step", "exactness")


@dataclass(frozen=True)
class NearMiss:
    """A candidate a rule rejected: which rule, graph node, module path, and why."""

    rule: str
    node: str
    path: str
    reason: str


def fmt_eps(eps: float | tuple[float, ...] | None) -> str:
    if eps is None:
        return "—"
    if isinstance(eps, tuple):
        vals = sorted(set(eps))
        if len(vals) == 1:
            return fmt_eps(vals[0])
        return f"{len(eps)} heads: {min(vals):.4g}…{max(vals):.4g}"
    return f"{eps:.4g}"


def fmt_step(t: float | str | None) -> str:
    if t is None:
        return "—"
    return f"{t:g}" if isinstance(t, float | int) else str(t)


@dataclass(frozen=True)
class InspectReport:
    """model: what was inspected; source: where it came from (weights, inputs); capture: method."""

    model: str
    source: str
    capture: str
    blocks: tuple[HJSpec, ...]
    near_misses: tuple[NearMiss, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def kinds(self) -> dict[str, int]:
        """Number of blocks per kind."""
        return dict(Counter(str(b.kind) for b in self.blocks))

    def rows(self) -> list[tuple[str, ...]]:
        return [(b.path, str(b.kind), b.hamiltonian.formula, fmt_eps(b.epsilon),
                 fmt_step(b.time_step), str(b.exactness)) for b in self.blocks]

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.kinds().items()) or "no blocks"
        return (f"{self.model}: {len(self.blocks)} blocks ({kinds}); "
                f"{len(self.near_misses)} near-misses; captured by {self.capture} "
                f"in {self.seconds:.1f} s")

    def __str__(self) -> str:
        rows = [COLUMNS, *self.rows()]
        widths = [min(60, max(len(r[i]) for r in rows)) for i in range(len(COLUMNS))]
        lines = [f"{self.model} — {self.source}"]
        for j, r in enumerate(rows):
            lines.append("  ".join(c[:w].ljust(w) for c, w in zip(r, widths, strict=True)))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append(self.summary())
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "source": self.source, "capture": self.capture,
            "seconds": self.seconds, "counts": dict(self.counts), "kinds": self.kinds(),
            "blocks": [b.to_dict() for b in self.blocks],
            "near_misses": [vars(m) for m in self.near_misses], "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> InspectReport:
        d = json.loads(text)
        return cls(
            model=d["model"], source=d["source"], capture=d["capture"],
            blocks=tuple(HJSpec.from_dict(b) for b in d["blocks"]),
            near_misses=tuple(NearMiss(**m) for m in d["near_misses"]),
            counts=dict(d["counts"]), seconds=float(d["seconds"]), notes=tuple(d["notes"]),
        )

    def rich_table(self, *, explain: bool = False) -> Any:
        """A rich renderable: the block table (and the near-misses with `explain`)."""
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"{self.model} — {self.source}", title_justify="left")
        styles = {"exact": "green", "structural": "yellow", "open": "red"}
        for col in COLUMNS:
            flexible = col in ("path", "Hamiltonian")
            table.add_column(col, overflow="fold", no_wrap=not flexible,
                             justify="right" if col == "ε" else "left",
                             ratio=1 if flexible else None, min_width=8 if flexible else None)
        if explain:
            table.add_column("notes", overflow="fold", style="dim", ratio=1, min_width=8)
        for block, row in zip(self.blocks, self.rows(), strict=True):
            style = styles.get(row[-1], "")
            cells = [*row[:-1], f"[{style}]{row[-1]}[/]" if style else row[-1]]
            table.add_row(*cells, *([block.notes] if explain else []))
        parts: list[Any] = [table]
        if explain and self.near_misses:
            misses = Table(title="near-misses (why a candidate was not a block)",
                           title_justify="left")
            for col in ("rule", "path", "node", "reason"):
                misses.add_column(col, overflow="fold")
            for m in self.near_misses:
                misses.add_row(m.rule, m.path, m.node, m.reason)
            parts.append(misses)
        return Group(*parts)
