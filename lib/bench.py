"""`python -m lib.bench`: this machine's speed, written to `data_cache/bench.json`.

Parts (`--only` picks some; the others keep their previous values in bench.json):
  matmul          square-matmul peak GFLOP/s (fp32, bf16)
  train           our training step's input tokens/s and GFLOP/s, every preset, fp32 and bf16, eager
  tokenize        tokenization speed over a whole corpus
  peer            our step (the profile's precision and torch.compile) vs a plain Seq2SeqTrainer
  utilisation     achieved training FLOP/s over the bf16 matmul peak measured in the same process
  sweep_modes     runs per hour: one process with every thread vs one process per core
  moe_proxy       training speed of finding 3.6's dense size and its MoE proxy, measured together
  book_cpu_hours  2-core hours of every cached cpu run
  precision       fp32 vs bf16 on one 3.2 grid cell; trains what is missing (only when asked for)
Goals live here, never in timed tests.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import torch
from torch.utils.flop_counter import FlopCounterMode

from lib import ledger, runs, sweeps
from lib.config import RunConfig
from lib.corpora import load_corpus
from lib.models import build_model, meta_parameter_counts
from lib.numerics import cpu_facts, matmul_peak_flops
from lib.paths import bench_path, cache_root, repo_root
from lib.peer import span_corrupted, trainer_tokens_per_s
from lib.profiles import get_profile
from lib.provenance import environment
from lib.tokenizer import NUM_SENTINELS, get_tokenizer
from lib.tokens import build_token_store
from lib.train import _optimizer, learning_rate, training_loss

PARTS = ("matmul", "train", "tokenize", "peer", "utilisation", "sweep_modes", "moe_proxy", "book_cpu_hours",
         "precision")
DEFAULT_PARTS = PARTS[:-1]  # precision trains runs: only when asked for
QUICK_PARTS = ("matmul", "train", "peer", "utilisation", "sweep_modes", "moe_proxy")  # the parts --quick shortens
PEER_MIN_PARAMS = 1_000_000  # the goals hold for presets of at least 1M parameters
WARMUP_STEPS = 5  # untimed steps before timing (compiled steps stay slow for the first three)


def _autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()


def matmul_gflops(dtype: str, repeats: int = 10) -> float:
    """Peak GFLOP/s of square CPU matmuls (best over sizes), on tensors of that dtype."""
    return matmul_peak_flops(torch.device("cpu"), torch.bfloat16 if dtype == "bf16" else torch.float32, repeats) / 1e9


def bf16_sentence(facts: dict, peak: dict) -> str:
    """Whether this CPU computes bf16 natively, in words, with the measured matmul peaks."""
    native = "computes bf16 natively (AVX-512 BF16 or AMX)" if facts["native_bf16"] else (
        "has no native bf16 (no AVX-512 BF16 or AMX): bf16 is emulated and far slower than fp32 here")
    return (f"{facts['cpu_model']} {native}; square-matmul peak {peak['fp32']:.0f} GFLOP/s in fp32 and "
            f"{peak['bf16']:.0f} in bf16, with ATen's {facts['aten_capability']} kernels.")


def _bench_config(profile: str, size: str) -> tuple[RunConfig, int]:
    """A profile's run config for one preset (its optimizer settings and batch), and its vocabulary."""
    p = get_profile(profile)
    return p.config(size), p.vocab_size + NUM_SENTINELS


def train_throughput(profile: str, size: str, dtype: str, steps: int = 12, compile_model: bool = False,
                     before_timing=None, experts: int = 0) -> dict:
    """Input tokens/s and GFLOP/s of our training step, as `lib.train` runs it on one process (AdamW,
    learning-rate schedule, gradient clipping, optional bf16 autocast and torch.compile), on
    span-corrupted random batches. FLOPs: `FlopCounterMode` over one eager step; time: `steps`
    steps after the warm-up. `experts` > 0: the preset as a Switch MoE with that many experts."""
    cfg, total_vocab = _bench_config(profile, size)
    if experts:
        cfg = cfg.replace(model__num_experts=experts)
    model = build_model(cfg.model, total_vocab, seed=0, input_length=cfg.data.input_length)
    optimizer = _optimizer(model, cfg)
    if compile_model:
        torch._dynamo.reset()  # one fresh compilation per model: no recompile limit reached
    step_model = torch.compile(model) if compile_model else model
    batch = cfg.optim.batch_size
    inputs, targets = (torch.as_tensor(x) for x in span_corrupted(cfg, total_vocab, batch * (1 + WARMUP_STEPS + steps)))
    loss_sum = torch.zeros((), dtype=torch.float64)

    def step(i: int, module=step_model):
        nonlocal loss_sum
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(i, cfg)
        with _autocast(dtype):
            loss = training_loss(module, inputs[i * batch:(i + 1) * batch], targets[i * batch:(i + 1) * batch], cfg,
                                 pads_inputs=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().double()

    counter = FlopCounterMode(display=False)
    with counter:
        step(0, model)
    for i in range(1, 1 + WARMUP_STEPS):
        step(i)
    if before_timing:
        before_timing()
    start = time.perf_counter()
    for i in range(1 + WARMUP_STEPS, 1 + WARMUP_STEPS + steps):
        step(i)
    seconds = (time.perf_counter() - start) / steps
    return {"preset": size + (f" MoE {experts}" if experts else ""),
            "params": sum(q.numel() for q in model.parameters()), "dtype": dtype,
            "compiled": compile_model, "tokens_per_s": batch * cfg.data.input_length / seconds,
            "gflops": counter.get_total_flops() / seconds / 1e9}


def large_presets(profile: str) -> list[str]:
    """The presets with at least 1M parameters (the issue's speed goals)."""
    p = get_profile(profile)
    return [size for size in p.sizes
            if meta_parameter_counts(p.presets[size], p.vocab_size + NUM_SENTINELS)["params"] >= PEER_MIN_PARAMS]


@functools.cache
def profile_throughput(profile: str, size: str, dtype: str, steps: int) -> dict:
    """`train_throughput` with the profile's compile setting, measured once per process (for peer and utilisation)."""
    return train_throughput(profile, size, dtype, steps, compile_model=get_profile(profile).compile)


def peer(profile: str, sizes: list[str], steps: int) -> list[dict]:
    """Our step (the profile's precision and compile setting) vs a plain Seq2SeqTrainer, per preset."""
    p, rows = get_profile(profile), []
    for size in sizes:
        ours = profile_throughput(profile, size, p.precision, steps)["tokens_per_s"]
        trainer = trainer_tokens_per_s(*_bench_config(profile, size), steps=steps, warmup=WARMUP_STEPS)
        rows.append({"preset": size, "precision": p.precision, "compiled": p.compile, "ours_tokens_per_s": ours,
                     "trainer_tokens_per_s": trainer, "ratio": ours / trainer})
        print(f"peer {size}: ours {ours:,.0f}, Seq2SeqTrainer {trainer:,.0f} input tokens/s ({ours / trainer:.2f}x)")
    return rows


def utilisation(profile: str, sizes: list[str], steps: int) -> list[dict]:
    """Achieved training FLOP/s over the bf16 matmul peak (measured here), per preset and dtype."""
    p, peak, rows = get_profile(profile), matmul_gflops("bf16"), []
    for size in sizes:
        for dtype in ("fp32", "bf16"):
            row = profile_throughput(profile, size, dtype, steps)
            rows.append({"preset": size, "dtype": dtype, "compiled": p.compile, "gflops": row["gflops"],
                         "bf16_peak_gflops": peak, "fraction_of_bf16_peak": row["gflops"] / peak})
            print(f"utilisation {size} {dtype}: {row['gflops']:.1f} of {peak:.0f} GFLOP/s "
                  f"({row['gflops'] / peak:.0%})")
    return rows


def moe_proxy(profile: str, steps: int) -> list[dict]:
    """Training speed of finding 3.6's pair on a quiet machine: the dense size and its MoE proxy
    (run times in the cache vary with whatever else the machine was doing)."""
    p = get_profile(profile)
    dense, experts = sweeps.moe_proxy(profile)
    rows = [train_throughput(profile, dense, p.precision, steps, p.compile),
            train_throughput(profile, p.variant, p.precision, steps, p.compile, experts=experts)]
    for row in rows:
        print(f"moe_proxy {row['preset']}: {row['tokens_per_s']:,.0f} input tokens/s")
    return rows


def _side_by_side(profile: str, size: str, processes: int, steps: int) -> list[float]:
    """Input tokens/s of `processes` concurrent training processes sharing the cores, timed together."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "REPEAT_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="bench-barrier-") as barrier:
        command = [sys.executable, "-m", "lib.bench", "--profile", profile, "--throughput-of", size,
                   "--steps", str(steps), "--barrier", barrier, "--parties", str(processes)]
        children = [subprocess.Popen(command, cwd=repo_root(), env=env, stdout=subprocess.PIPE, text=True)
                    for _ in range(processes)]
        outputs = [child.communicate(timeout=1800)[0] for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError(f"a sweep-mode measurement of {size} failed")
    return [json.loads(out.strip().splitlines()[-1])["tokens_per_s"] for out in outputs]


def sweep_modes(profile: str, sizes: list[str], steps: int, quick: bool = False) -> dict:
    """Runs per hour of small presets, one process with every thread vs one process per core.

    Counts training steps only (a run's T input tokens at the measured speed); start-up, compile
    and evaluation cost the same in both modes. `best` is the faster mode per preset, which
    `run_sweep` uses unless the measurement was quick."""
    p, cores, rows = get_profile(profile), os.cpu_count() or 1, []
    for size in sizes:
        for processes in sorted({1, cores}):
            tokens_per_s = _side_by_side(profile, size, processes, steps)
            rows.append({"preset": size, "processes": processes, "threads_per_process": cores // processes,
                         "runs_per_hour": 3600 * sum(tokens_per_s) / p.total_tokens})
            print(f"sweep {size}: {processes} process(es) x {cores // processes} thread(s): "
                  f"{rows[-1]['runs_per_hour']:.1f} runs/hour")
    best = {size: max((r for r in rows if r["preset"] == size), key=lambda r: r["runs_per_hour"])["processes"]
            for size in sizes}
    return {"profile": profile, "steps": steps, "quick": quick, "modes": rows, "best": best}


def _barrier(folder: Path, parties: int, timeout: float = 1800):
    """A callable that waits until `parties` processes have called it (files in `folder`)."""
    def wait():
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + timeout
        while len(list(folder.iterdir())) < parties:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(list(folder.iterdir()))} of {parties} processes arrived")
            time.sleep(0.02)
    return wait


def book_cpu_hours() -> float:
    """2-core hours of every cached `cpu` run: wall seconds x threads (x processes) / 2, from the ledger."""
    summary = ledger.summary(ledger.ledger("cpu"))
    return float(summary.loc["cpu", "two_core_hours"]) if "cpu" in summary.index else 0.0


def precision_check(profile: str, seeds=(0, 1)) -> dict[str, list[RunConfig]]:
    """One 3.2 grid cell (XS, 64 epochs) per seed, in bf16 and in fp32 (one of them as the grid runs it)."""
    cell = sweeps.repetition_grid(profile, seeds, sizes=["XS"], epochs=(64,))
    return {precision: [cfg.replace(precision=precision) for cfg in cell] for precision in ("bf16", "fp32")}


def precision_verdict(bf16: list[float], fp32: list[float]) -> str:
    """Do the two precisions' final accuracies agree within the seed spread (largest max - min)?"""
    gap, spread = abs(mean(bf16) - mean(fp32)), max(max(bf16) - min(bf16), max(fp32) - min(fp32))
    agree = gap <= spread
    return (f"Final validation accuracy {'agrees' if agree else 'does not agree'} within the seed spread: "
            f"bf16 {mean(bf16):.4f}, fp32 {mean(fp32):.4f} (mean of {len(bf16)} seeds), a gap of {gap:.4f} "
            f"{'within' if agree else 'beyond'} the spread of {spread:.4f}.")


def precision(profile: str, seeds) -> dict:
    """Final validation accuracy per seed in both precisions (trains missing runs) and the verdict."""
    accuracy = {name: runs.run_sweep(cfgs, allow_train=True)["val_accuracy"].tolist()
                for name, cfgs in precision_check(profile, seeds).items()}
    return {**accuracy, "seeds": list(seeds), "verdict": precision_verdict(accuracy["bf16"], accuracy["fp32"])}


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


def measure(part: str, profile: str, quick: bool, seeds) -> dict:
    """The bench.json keys of one part (quick: a few steps, and only the first preset of each list)."""
    steps, first = (3, 1) if quick else (20, None)
    if part == "matmul":
        peak = {dtype: matmul_gflops(dtype, repeats=3 if quick else 10) for dtype in ("fp32", "bf16")}
        facts = cpu_facts()
        print(bf16_sentence(facts, peak))
        return {"matmul_gflops": peak, "cpu": facts, "bf16_native": bf16_sentence(facts, peak)}
    if part == "train":
        rows = [train_throughput(profile, size, dtype, steps) for size in get_profile(profile).sizes
                for dtype in ("fp32", "bf16")]
        for row in rows:
            print(f"train {row['preset']} {row['dtype']}: {row['tokens_per_s']:,.0f} input tokens/s, "
                  f"{row['gflops']:.1f} GFLOP/s")
        return {"train": rows}
    if part == "tokenize":
        tokenize = tokenize_speed()
        print(f"tokenize: {tokenize['characters']:,} characters of {tokenize['corpus']} in "
              f"{tokenize['seconds']:.1f} s ({tokenize['chars_per_s'] / 1e6:.1f}M chars/s)")
        return {"tokenize": tokenize, "tokenize_chars_per_s": tokenize["chars_per_s"]}
    if part == "peer":
        return {"peer": peer(profile, large_presets(profile)[:first], steps)}
    if part == "utilisation":
        return {"utilisation": utilisation(profile, large_presets(profile)[:first], steps)}
    if part == "sweep_modes":
        return {"sweep_modes": sweep_modes(profile, get_profile(profile).grid[:first], 6 if quick else 40, quick)}
    if part == "moe_proxy":
        return {"moe_proxy": moe_proxy(profile, steps)}
    if part == "book_cpu_hours":
        hours = book_cpu_hours()
        print(f"book: {hours:.2f} two-core hours of cpu runs")
        return {"book_cpu_hours": hours}
    check = precision(profile, seeds)
    print(check["verdict"])
    return {"precision_check": check}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="default: <cache>/bench.json")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(DEFAULT_PARTS), metavar="PART",
                        help="parts to measure (default: all but precision)")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps, first preset only: to test the bench (marked quick in bench.json)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the precision check")
    parser.add_argument("--throughput-of", help=argparse.SUPPRESS)  # one sweep-mode process
    parser.add_argument("--steps", type=int, default=40, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.throughput_of:
        torch.set_num_threads(int(os.environ.get("REPEAT_THREADS", 0)) or torch.get_num_threads())
        p = get_profile(args.profile)
        print(json.dumps(train_throughput(args.profile, args.throughput_of, p.precision, args.steps, p.compile,
                                          before_timing=_barrier(args.barrier, args.parties))))
        return
    out = args.out or bench_path()
    result = json.loads(out.read_text()) if out.exists() else {}
    for part in args.only:  # each part is written as soon as it is measured
        result.update(measure(part, args.profile, args.quick, args.seeds), threads=torch.get_num_threads(),
                      **environment(torch.device("cpu")))
        quick = args.quick and part in QUICK_PARTS
        result.setdefault("measured", {})[part] = {"git_sha": result["git_sha"], "quick": quick}
        runs.write_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
