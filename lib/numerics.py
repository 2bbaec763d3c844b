"""The numerics a run asks for: threads per process and the CPU kernel path, checked before training.

`kernels="avx2"` pins ATen's vectorised kernels and MKL's code path to AVX2, which every x86-64
CPU of this project's kind runs; with one thread per process a result then re-runs bit for bit on
another CPU. The pin is made by environment variables read when torch loads (set by `import lib`),
so a process that imported torch first cannot honour it: `check_kernels` refuses to train there
rather than give other numbers under the same cache key.
"""
from __future__ import annotations

import os
import platform
import time

import torch

from lib import PINNED_KERNEL_ENV

KERNEL_CHOICES = ("default", "avx2")


def check_kernels(kernels: str, device: torch.device) -> None:
    """Raise unless this process runs the kernel path the config asks for (CPU runs only)."""
    if kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {kernels!r}")
    if kernels == "default" or device.type != "cpu":
        return
    capability = torch.backends.cpu.get_cpu_capability()
    wrong_env = {k: os.environ.get(k) for k, v in PINNED_KERNEL_ENV.items() if os.environ.get(k) != v}
    if capability != "AVX2" or wrong_env:
        raise RuntimeError(
            f"this run asks for pinned AVX2 kernels, but torch runs {capability} kernels here "
            f"(environment: {wrong_env or 'as required'}). Import lib before torch, or start the process with "
            + " ".join(f"{k}={v}" for k, v in PINNED_KERNEL_ENV.items())
            + "; otherwise the result would differ from the cached one under the same key.")


def set_threads(threads: int, processes: int) -> int:
    """Torch threads for this process: the config's, else REPEAT_THREADS, else cores / processes."""
    threads = threads or int(os.environ.get("REPEAT_THREADS", 0)) or max(1, (os.cpu_count() or 1) // processes)
    torch.set_num_threads(threads)
    return threads


def cpu_facts() -> dict:
    """The CPU's model, ATen's kernel path and whether it computes bf16 natively (for a run's meta)."""
    flags = model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    return {"cpu_model": model or platform.processor() or platform.machine(), "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR", ""),
            "native_bf16": any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))}


def matmul_peak_flops(device: torch.device, dtype: torch.dtype = torch.bfloat16, repeats: int = 10) -> float:
    """Peak FLOP/s of square matmuls on this device (best over sizes), measured now."""
    sizes = (2048, 4096, 8192) if device.type == "cuda" else (512, 1024, 2048)
    best = 0.0
    for n in sizes:
        a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
        for _ in range(2):
            a @ b
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _synchronize(device)
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start))
    return best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
