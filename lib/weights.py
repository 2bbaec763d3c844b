"""A finished run's model weights: `data_cache/weights/<key>.safetensors`.

safetensors files hold tensors and a string header only, so loading one never unpickles objects.
The weights are rebuilt by training (they are not committed); the downstream probe reads them.
"""
from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_model, save_model

from lib.config import RunConfig
from lib.paths import cache_root


def weights_path(cfg: RunConfig) -> Path:
    return cache_root() / "weights" / f"{cfg.key()}.safetensors"


def save_weights(model, path: Path, key: str) -> None:
    """Write atomically (a temporary file renamed over the target); shared tensors are stored once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_model(model, str(tmp), metadata={"run_key": key})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_weights(model, path: Path) -> None:
    """Load into a freshly built model of the same config; a missing, extra or misshapen tensor raises."""
    load_model(model, str(path), strict=True)
