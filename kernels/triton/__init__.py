"""Triton kernels (each module imports triton at its top: import these modules lazily only)."""
