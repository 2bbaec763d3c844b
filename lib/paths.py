"""Where the repository and the cache live (`REPEAT_CACHE_DIR` overrides `data_cache/`)."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    return Path(os.environ.get("REPEAT_CACHE_DIR", repo_root() / "data_cache")).resolve()
