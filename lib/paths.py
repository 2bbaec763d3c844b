"""Where the repository and the cache live (`REPEAT_CACHE_DIR` overrides `data_cache/`), and the
cache's benchmark file."""
from __future__ import annotations

import json
import os
from pathlib import Path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    return Path(os.environ.get("REPEAT_CACHE_DIR", repo_root() / "data_cache")).resolve()


def bench_path() -> Path:
    """Where `python -m lib.bench` keeps this machine's measurements."""
    return cache_root() / "bench.json"


def read_bench() -> dict:
    """The measurements in bench.json; {} if the bench has not run or its file is unreadable."""
    try:
        return json.loads(bench_path().read_text())
    except (OSError, ValueError):
        return {}
