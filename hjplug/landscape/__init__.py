"""The attribution landscape x ↦ H(π(x; ε)): critical points and fold bifurcations (§5)."""

from hjplug.landscape.critical import CriticalPoint, critical_points, landscape_entropy
from hjplug.landscape.domains import Path1D, Slice2D
from hjplug.landscape.folds import Fold, FoldScan, scan_folds

__all__ = [
    "CriticalPoint",
    "Fold",
    "FoldScan",
    "Path1D",
    "Slice2D",
    "critical_points",
    "landscape_entropy",
    "scan_folds",
]
