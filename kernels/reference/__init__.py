"""Pure-PyTorch twins of the fused kernels (same signatures, plus an optional `chunk`)."""
