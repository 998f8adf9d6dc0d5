"""Shared test fixtures: offline Hugging Face stack and the tiny zoo model.

The environment is set at import time as well as in the session fixture, because
huggingface_hub reads HF_HUB_OFFLINE when it is first imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

TEST_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update(TEST_ENV)
# A persistent cache (gitignored /.cache/) so the zoo is built once per machine, not per run.
os.environ.setdefault("OXSTUDY_CACHE", str(REPO_ROOT / ".cache" / "oxstudy"))


@pytest.fixture(scope="session", autouse=True)
def offline_env() -> dict[str, str]:
    """Offline HF stack and a session-wide OXSTUDY_CACHE for every test."""
    os.environ.update(TEST_ENV)
    return {**TEST_ENV, "OXSTUDY_CACHE": os.environ["OXSTUDY_CACHE"]}


@pytest.fixture(scope="session")
def zoo_tiny() -> str:
    """Local path of the smallest zoo model (built once into OXSTUDY_CACHE, ~1 min cold)."""
    from oxstudy.zoo import build

    return str(build("tiny"))


@pytest.fixture(scope="module")
def single_thread():
    """One torch intra-op thread for a module of tiny-model tests (restored after): on a shared
    2-core CPU extra threads only add contention. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
