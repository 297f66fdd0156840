"""Fixtures for the Hugging Face integration tests (quiet transformers, registration)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(autouse=True)
def _hf_registered() -> None:
    """Every test starts with "hjplug" registered in both interfaces (tests may remove it)."""
    from hjplug.integrations.huggingface import register

    register()
