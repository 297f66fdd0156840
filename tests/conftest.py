"""Shared test configuration: the `gpu` marker skips cleanly without CUDA (checked lazily)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch  # only now: collecting a test module never touches CUDA

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none found)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A per-test seed that differs between tests and between runs (printed on failure)."""
    import secrets

    value = secrets.randbelow(2**31)
    request.node.user_properties.append(("seed", value))
    print(f"seed = {value}")  # shown by pytest when the test fails
    return value
