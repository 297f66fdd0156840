"""hjplug.layers — the library's own trainable layers (exact HJ readings, paper-notes §1)."""

from hjplug.layers.lse_layer import LSELayer

__all__ = ["LSELayer"]
