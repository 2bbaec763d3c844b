"""Shared setup: one temporary run cache for the whole session, the fixture corpus, and the
smoke-profile fixtures.

`REPEAT_CACHE_DIR` and `REPEAT_CORPORA` are set here, at import time, before any test module imports
`lib`, so no test reads or writes the repository's `data_cache/`, and every test reads the corpus
committed in `data/fixtures/` (nothing outside the repository). The smoke tokenizer and token stores
are built once in that cache and reused by every test (and copied for the distributed test).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SESSION_CACHE = Path(tempfile.mkdtemp(prefix="repeat-test-cache-"))
os.environ["REPEAT_CACHE_DIR"] = str(SESSION_CACHE)
FIXTURE_CORPORA = Path(__file__).resolve().parent.parent / "data" / "fixtures"
os.environ["REPEAT_CORPORA"] = str(FIXTURE_CORPORA)
for _name in ("REPEAT_ALLOW_TRAIN", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
    os.environ.pop(_name, None)  # tests decide explicitly whether they train, in one process
import lib  # noqa: E402,F401  pins torch's CPU kernels before any test module imports torch


def pytest_unconfigure(config):
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The session's run cache (the value of REPEAT_CACHE_DIR)."""
    return SESSION_CACHE


@pytest.fixture(scope="session")
def smoke():
    from lib.profiles import get_profile
    return get_profile("smoke")


@pytest.fixture(scope="session")
def base_cfg(smoke):
    """The reference run: smoke XS, U = 2^12 tokens (64 chunks) repeated 4 epochs, 32 steps of 8."""
    return smoke.config("XS", unique_tokens=2**12, epochs=4, label="test base")


@pytest.fixture(scope="session")
def store(base_cfg):
    """The smoke token store of the web corpus (builds the tokenizer on first use)."""
    from lib.tokens import token_store
    return token_store(base_cfg.data)


@pytest.fixture(scope="session")
def base_result(base_cfg, cache_dir):
    """`base_cfg` trained once through the real cache entry point."""
    from lib import runs
    return runs.run(base_cfg, allow_train=True, progress=False)
