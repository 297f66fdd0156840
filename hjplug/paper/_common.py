"""Shared pieces of the paper experiments: run settings, atomic files, figures, checks, fits."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hjplug import math as hm
from hjplug.errors import HJPlugError
from hjplug.file_mode import match_plain_write
from hjplug.paper.records import EntropyCheck

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

F64 = torch.float64
ENTROPY_TOL = 1e-10  # allowed fp64 round-off drop of H between neighbouring ε

__all__ = [
    "ENTROPY_TOL",
    "F64",
    "RunConfig",
    "atomic_write_text",
    "ensure_writable_dir",
    "entropy_monotonicity",
    "log_grid",
    "loglog_slope",
    "new_figure",
    "save_figure",
]


@dataclass(frozen=True)
class RunConfig:
    """Settings shared by every experiment: quick mode, seed, and the output directory."""

    quick: bool
    seed: int
    out_dir: Path

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh seeded generator (each experiment its own offset: runs are reproducible)."""
        return torch.Generator().manual_seed(self.seed * 1000 + offset)


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` if needed and prove it writable; otherwise raise one clear HJPlugError."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise HJPlugError(f"output path '{out}' exists and is not a directory; "
                          "give a directory with -o DIR")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".hjplug-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HJPlugError(f"cannot write to output directory '{out}': {reason}; "
                          "choose a writable directory with -o DIR") from None
    return out


@contextlib.contextmanager
def _atomic_target(path: Path):
    """Yield a temp file path in path's directory; os.replace it onto `path` on success."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        match_plain_write(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> Path:
    """Write text to `path` atomically (temp file in the same directory, then os.replace)."""
    try:
        with _atomic_target(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HJPlugError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.2) -> tuple[Figure, list]:
    """A matplotlib Figure (Agg canvas, no pyplot global state) with `ncols` axes side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def save_figure(fig: Figure, path: Path) -> Path:
    """Save a PNG atomically (rendered to a temp file in the same directory, then os.replace)."""
    try:
        with _atomic_target(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    except OSError as exc:
        raise HJPlugError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


def log_grid(lo: float, hi: float, n: int) -> Tensor:
    """n values log-uniform in [lo, hi] (fp64).  [n]"""
    return torch.logspace(torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), n,
                          dtype=F64)


def loglog_slope(n: Tensor, err: Tensor) -> tuple[float, float]:
    """Least-squares fit log err = slope·log n + c; returns (slope, c).

    Closed form slope = Σ(lx − l̄x)(ly − l̄y)/Σ(lx − l̄x)², summed with math.fsum (bit-reproducible).
    """
    lx = [math.log(float(v)) for v in n]
    ly = [math.log(float(v)) for v in err]
    mx, my = math.fsum(lx) / len(lx), math.fsum(ly) / len(ly)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in lx)
    slope = sxy / sxx
    return slope, my - slope * mx


def entropy_monotonicity(
    W: Tensor, b: Tensor, x: Tensor, eps_grid: Tensor, tol: float = ENTROPY_TOL
) -> EntropyCheck:
    """Check ε ↦ H(π(x; ε)) non-decreasing at every fixed x (rows of x [P, d]).

    Two independent tests: neighbouring grid values H(ε_{k+1}) − H(ε_k) ≥ −tol, and the closed
    form ∂H/∂ε = Var_π(z)/ε³ ≥ 0 at every (x, ε) (z = Wx + b).
    """
    z = hm.logits(x, W.detach(), b.detach())  # [P, N]
    eps_sorted = torch.sort(eps_grid.to(F64)).values
    H = torch.stack([hm.entropy(z, float(e)) for e in eps_sorted])  # [E, P]
    dH = torch.stack([hm.entropy_eps_derivative(z, float(e)) for e in eps_sorted])  # [E, P]
    drops = H[:-1] - H[1:]  # [E-1, P], > 0 where H decreased
    return EntropyCheck(
        n_points=int(x.shape[0]),
        n_eps=int(eps_sorted.numel()),
        violations=int((drops > tol).sum()),
        max_drop=max(0.0, float(drops.max())) if drops.numel() else 0.0,
        min_derivative=float(dH.min()),
        tolerance=tol,
    )
