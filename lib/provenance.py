"""What produced a result: git commit, library versions, hardware."""
from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

import torch

from lib.numerics import cpu_facts
from lib.paths import repo_root

LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "numpy", "sentencepiece")


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_facts()['cpu_model']}"


def library_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # e.g. `datasets` on a machine that reads token packs
        return "not installed"


def environment(device: torch.device) -> dict:
    return {"git_sha": git_sha(), "versions": {name: library_version(name) for name in LIBRARIES},
            "python": platform.python_version(), "device": device_name(device)}
