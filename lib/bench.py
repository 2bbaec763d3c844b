"""`python -m lib.bench`: this machine's speed, written to `data_cache/bench.json`.

Measured in one process: a square-matmul peak (fp32 and bf16 autocast), training throughput
(input tokens/s and achieved FLOP/s counted by `FlopCounterMode`) for each preset of a profile,
and tokenization speed over a whole corpus. Goals live here, never in timed tests.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from lib.corpora import load_corpus
from lib.models import build_model
from lib.objectives import SpanCorruption
from lib.paths import cache_root
from lib.profiles import get_profile
from lib.provenance import environment
from lib.runs import write_atomic
from lib.tokenizer import get_tokenizer
from lib.tokens import build_token_store


def matmul_gflops(dtype: str, n: int = 1024, repeats: int = 20) -> float:
    """Achieved GFLOP/s of an n x n matmul (bf16 through autocast, as training uses it)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    with autocast:
        for _ in range(3):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def train_throughput(profile: str, size: str, dtype: str, steps: int = 12, compile_model: bool = False) -> dict:
    """Input tokens/s and GFLOP/s of full training steps (AdamW) on random span-corrupted batches."""
    p = get_profile(profile)
    total_vocab = p.vocab_size + 100
    objective = SpanCorruption(p.input_length, total_vocab)
    model = build_model(p.presets[size], total_vocab, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step_model = torch.compile(model) if compile_model else model
    rng = np.random.default_rng(0)
    raw = rng.integers(3, p.vocab_size, size=(p.batch_size, objective.raw_length))
    inputs, targets = (torch.as_tensor(x) for x in objective(raw, rng))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

    def step():
        with autocast:
            loss = step_model(input_ids=inputs, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    counter = FlopCounterMode(display=False)
    with counter:
        step()  # also the warm-up (and compile) step
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"preset": size, "params": sum(q.numel() for q in model.parameters()), "dtype": dtype,
            "compiled": compile_model, "tokens_per_s": p.batch_size * p.input_length / seconds,
            "gflops": counter.get_total_flops() / seconds / 1e9}


def tokenize_speed(corpus: str = "web") -> dict:
    """Characters/s tokenizing a whole local corpus into a fresh token store (both cores)."""
    p = get_profile("cpu")
    tokenizer = get_tokenizer(p.tokenizer_corpora, p.vocab_size, p.tokenizer_sample_chars)
    documents = load_corpus(corpus)
    scratch = Path(tempfile.mkdtemp(dir=cache_root()))
    try:
        meta = build_token_store(documents, tokenizer, scratch / "store")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"corpus": corpus, "characters": meta["characters"], "tokens": meta["tokens"],
            "seconds": meta["seconds"], "chars_per_s": meta["characters"] / meta["seconds"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="default: <cache>/bench.json")
    args = parser.parse_args(argv)
    out = args.out or cache_root() / "bench.json"
    torch.manual_seed(0)
    result = {"threads": torch.get_num_threads(), **environment(torch.device("cpu")),
              "matmul_gflops": {dtype: matmul_gflops(dtype) for dtype in ("fp32", "bf16")}, "train": []}
    print(f"matmul peak: {result['matmul_gflops']}")
    for size in get_profile(args.profile).sizes:
        for dtype in ("fp32", "bf16"):
            row = train_throughput(args.profile, size, dtype)
            result["train"].append(row)
            print(f"train {size} {dtype}: {row['tokens_per_s']:,.0f} input tokens/s, {row['gflops']:.1f} GFLOP/s")
    tokenize = tokenize_speed()
    result["tokenize"] = tokenize
    result["tokenize_chars_per_s"] = tokenize["chars_per_s"]
    print(f"tokenize: {tokenize['characters']:,} characters of {tokenize['corpus']} in {tokenize['seconds']:.1f} s "
          f"({tokenize['chars_per_s'] / 1e6:.1f}M chars/s)")
    write_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
