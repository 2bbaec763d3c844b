"""repeat-or-not: a CPU-to-cluster reproduction of Xue et al. (2023), "To Repeat or Not To Repeat".

Importing `lib` before torch pins PyTorch's CPU kernel path (ATen's AVX2 kernels and MKL's
conditional numerical reproducibility at AVX2), so that a run re-made on another x86-64 CPU gives
the same bits. The variables only take effect before torch is imported; runs whose config asks for
pinned kernels check that they did (`lib.numerics`).
"""
import os as _os
import sys as _sys

PINNED_KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}

if "torch" not in _sys.modules:
    for _name, _value in PINNED_KERNEL_ENV.items():
        _os.environ.setdefault(_name, _value)
