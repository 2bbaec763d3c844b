"""`python -m lib.bench`: this machine's speed, written to `data_cache/bench.json`.

Every in-process part runs at the profile's numerics: its precision, its torch thread count (the
`cpu` profile: one thread, as each of its runs trains) and the process's kernels (`import lib` pins
ATen and MKL to AVX2 before torch loads). Parts (`--only` picks some; the others keep their
previous values in bench.json):
  matmul          square-matmul peak GFLOP/s (fp32, bf16) and whether bf16 is native here, in words
  train           our training step's input tokens/s and GFLOP/s, every preset, fp32 and bf16, eager
  tokenize        tokenization speed over a whole corpus
  peer            our step vs a plain Seq2SeqTrainer on the same model, batches, optimizer settings and
                  schedule, side by side in this process, in the profile's precision and thread count
  utilisation     achieved training FLOP/s over the matmul peak in the same precision, measured here
  step_profile    one step of the profile's largest grid size under torch.profiler: the top operators
                  by self CPU time and the step's phases, as shares of the step time
  sweep_modes     runs per hour: one training process alone vs several side by side, each with the
                  profile's threads (one thread per run: 1 vs one process per core)
  moe_proxy       training speed of finding 3.6's pairs (each dense size and its MoE proxy), measured together
  book_cpu_hours  2-core hours of every cached cpu run
Goals live here, never in timed tests.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from lib import PINNED_KERNEL_ENV, ledger, runs, sweeps
from lib.config import RunConfig
from lib.corpora import load_corpus
from lib.models import build_model, meta_parameter_counts
from lib.numerics import cpu_facts, matmul_peak_flops
from lib.objectives import SpanCorruption
from lib.paths import bench_path, cache_root, repo_root
from lib.peer import optimizer_name, span_corrupted, trainer_throughput
from lib.profiles import get_profile
from lib.provenance import environment
from lib.tokenizer import NUM_SENTINELS, get_tokenizer
from lib.tokens import build_token_store
from lib.train import _optimizer, learning_rate, training_loss

PARTS = ("matmul", "train", "tokenize", "peer", "utilisation", "step_profile", "sweep_modes", "moe_proxy",
         "book_cpu_hours")
QUICK_PARTS = ("matmul", "train", "peer", "utilisation", "step_profile", "sweep_modes", "moe_proxy")  # --quick shortens these
RETIRED = {"precision_check": "precision"}  # bench.json keys (and their part) no longer measured: dropped on write
PEER_MIN_PARAMS = 1_000_000  # the goals hold for presets of at least 1M parameters
WARMUP_STEPS = 5  # untimed steps before timing (compiled steps stay slow for the first three)
GOAL_RATIO, GOAL_UTILISATION = 1.5, 0.5  # the speed goals (the reproducibility page reads them)
PHASES = ("batch", "forward", "backward", "clip", "optimizer")  # the labelled parts of a profiled step
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation")


def _autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()


def bench_threads(profile: str) -> int:
    """Torch threads of the in-process parts: the profile's per-run count, else REPEAT_THREADS, else torch's."""
    return get_profile(profile).threads or int(os.environ.get("REPEAT_THREADS", 0)) or torch.get_num_threads()


@contextlib.contextmanager
def profile_threads(profile: str):
    """Run the block with the profile's torch thread count (`bench_threads`), then restore the old one."""
    before = torch.get_num_threads()
    torch.set_num_threads(bench_threads(profile))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def matmul_gflops(dtype: str, repeats: int = 10) -> float:
    """Peak GFLOP/s of square CPU matmuls (best over sizes), on tensors of that dtype, at this process's threads."""
    return matmul_peak_flops(torch.device("cpu"), torch.bfloat16 if dtype == "bf16" else torch.float32, repeats) / 1e9


def bf16_sentence(facts: dict, peak: dict, threads: int | None = None) -> str:
    """Whether this CPU computes bf16 natively, in words, with the measured matmul peaks."""
    at = f" at {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    ratio = peak["bf16"] / peak["fp32"] if peak["fp32"] else float("nan")
    native = ("computes bf16 natively (AVX-512 BF16 or AMX)" if facts["native_bf16"] else
              "has no native bf16 (no AVX-512 BF16 or AMX): bf16 is emulated")
    return (f"{facts['cpu_model']} {native}; its square-matmul peak{at} is {peak['bf16']:.0f} GFLOP/s in bf16 "
            f"against {peak['fp32']:.0f} in fp32 ({ratio:.1f}x), with ATen's {facts['aten_capability']} kernels.")


def _bench_config(profile: str, size: str) -> tuple[RunConfig, int]:
    """A profile's run config for one preset (its optimizer settings and batch), and its vocabulary."""
    p = get_profile(profile)
    return p.config(size), p.vocab_size + NUM_SENTINELS


def step_data(cfg: RunConfig, total_vocab: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The batches of a timed measurement: FLOP-count step, warm-up steps, then `steps` timed ones (the
    same arrays for our step and for the peer's Trainer)."""
    return span_corrupted(cfg, total_vocab, cfg.optim.batch_size * (1 + WARMUP_STEPS + steps))


def training_step(cfg: RunConfig, total_vocab: int, dtype: str, compile_model: bool, inputs, targets,
                  labelled: bool = False):
    """`lib.train`'s training step on one process (learning rate, optional bf16 autocast and
    torch.compile, loss, backward, gradient clipping, AdamW, zeroing, the on-device loss sum), with
    step i on batch i of `inputs`/`targets`. Returns (model, optimizer, step); `labelled` names the
    step's phases for torch.profiler."""
    model = build_model(cfg.model, total_vocab, seed=cfg.seed, input_length=cfg.data.input_length)
    optimizer = _optimizer(model, cfg)
    if compile_model:
        torch._dynamo.reset()  # one fresh compilation per model: no recompile limit reached
    step_model = torch.compile(model) if compile_model else model
    batch = cfg.optim.batch_size
    inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
    phase = torch.profiler.record_function if labelled else (lambda name: contextlib.nullcontext())
    loss_sum = torch.zeros((), dtype=torch.float64)

    def step(i: int, module=step_model):
        nonlocal loss_sum
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(i, cfg)
        with phase("forward"), _autocast(dtype):
            loss = training_loss(module, inputs[i * batch:(i + 1) * batch], targets[i * batch:(i + 1) * batch], cfg,
                                 pads_inputs=False)
        with phase("backward"):
            loss.backward()
        if cfg.optim.grad_clip:
            with phase("clip"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        with phase("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().double()

    return model, optimizer, step


def _moe_bench_config(profile: str, size: str, experts: int) -> tuple[RunConfig, int]:
    """`_bench_config`, as an MoE of `experts` with the variant designs' routing when experts > 0."""
    cfg, total_vocab = _bench_config(profile, size)
    if experts:
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, **sweeps.moe(experts)))
    return cfg, total_vocab


def train_throughput(profile: str, size: str, dtype: str, steps: int = 12, compile_model: bool = False,
                     before_timing=None, experts: int = 0, data=None) -> dict:
    """Input tokens/s and GFLOP/s of our training step (`training_step`) at this process's threads, on
    span-corrupted batches made beforehand (`data`, default `step_data`; `lib.train` makes each batch
    in its step, which `step_profile` shows). FLOPs: `FlopCounterMode` over one eager step; time:
    `steps` steps after the warm-up. `experts` > 0: the preset as an MoE with that many experts and
    the variant designs' routing (`sweeps.moe`: top-2)."""
    cfg, total_vocab = _moe_bench_config(profile, size, experts)
    model, optimizer, step = training_step(cfg, total_vocab, dtype, compile_model,
                                           *(data if data is not None else step_data(cfg, total_vocab, steps)))
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
    batch = cfg.optim.batch_size
    return {"preset": size + (f" MoE {experts}" if experts else ""),
            "params": sum(q.numel() for q in model.parameters()), "dtype": dtype,
            "compiled": compile_model, "threads": torch.get_num_threads(),
            "tokens_per_s": batch * cfg.data.input_length / seconds,
            "gflops": counter.get_total_flops() / seconds / 1e9, "optimizer": optimizer_name(optimizer)}


def large_presets(profile: str) -> list[str]:
    """The presets with at least 1M parameters (the issue's speed goals)."""
    p = get_profile(profile)
    return [size for size in p.sizes
            if meta_parameter_counts(p.presets[size], p.vocab_size + NUM_SENTINELS)["params"] >= PEER_MIN_PARAMS]


def goal_presets(profile: str) -> list[str]:
    """The presets the peer and utilisation parts measure: those of at least 1M parameters, else (a
    small profile, e.g. smoke, where no goal applies) the largest one, so the parts still run."""
    return large_presets(profile) or get_profile(profile).sizes[-1:]


@functools.cache
def profile_throughput(profile: str, size: str, dtype: str, steps: int) -> dict:
    """`train_throughput` with the profile's compile setting and threads, on `step_data`, measured once
    per process."""
    with profile_threads(profile):
        return train_throughput(profile, size, dtype, steps, compile_model=get_profile(profile).compile)


def peer(profile: str, sizes: list[str], steps: int, rounds: int = 2) -> list[dict]:
    """Our step vs a plain Seq2SeqTrainer per preset, in this process at the profile's precision,
    thread count and the process's kernels: both on the very same batches (step i on batch i; the
    timed window holds the same steps), the same AdamW settings, gradient clipping and learning rate
    at every step. The two sides alternate `rounds` times; each keeps its best round (a busy moment
    of the machine then slows one round, not one side)."""
    p, rows = get_profile(profile), []
    with profile_threads(profile) as threads:
        for size in sizes:
            cfg, total_vocab = _bench_config(profile, size)
            data = step_data(cfg, total_vocab, steps)
            ours, theirs = [], []
            for _ in range(rounds):
                ours.append(train_throughput(profile, size, p.precision, steps, p.compile, data=data))
                theirs.append(trainer_throughput(cfg, total_vocab, data, steps, warmup=1 + WARMUP_STEPS))
            best, peer_best = (max(side, key=lambda row: row["tokens_per_s"]) for side in (ours, theirs))
            ratio = best["tokens_per_s"] / peer_best["tokens_per_s"]
            rows.append({"preset": size, "params": best["params"], "goal_applies": best["params"] >= PEER_MIN_PARAMS,
                         "precision": p.precision, "compiled": p.compile, "threads": threads,
                         "trainer_threads": peer_best["threads"], "kernels": torch.backends.cpu.get_cpu_capability(),
                         "batch": cfg.optim.batch_size, "input_length": cfg.data.input_length,
                         "steps": steps, "rounds": rounds, "ours_optimizer": best["optimizer"],
                         "trainer_optimizer": peer_best["optimizer"], "ours_tokens_per_s": best["tokens_per_s"],
                         "trainer_tokens_per_s": peer_best["tokens_per_s"], "ratio": ratio})
            print(f"peer {size} ({p.precision}, {threads} thread(s)): ours {best['tokens_per_s']:,.0f}, "
                  f"Seq2SeqTrainer {peer_best['tokens_per_s']:,.0f} input tokens/s ({ratio:.2f}x)")
    return rows


def utilisation(profile: str, sizes: list[str], steps: int, repeats: int = 10) -> list[dict]:
    """Achieved training FLOP/s over the square-matmul peak in the same precision (fp32 training over
    the fp32 peak), both measured in this process at the profile's thread count, per preset."""
    p, rows = get_profile(profile), []
    with profile_threads(profile) as threads:
        peak = matmul_gflops(p.precision, repeats)
        for size in sizes:
            row = profile_throughput(profile, size, p.precision, steps)
            rows.append({"preset": size, "params": row["params"], "precision": p.precision, "compiled": p.compile,
                         "threads": threads, "gflops": row["gflops"], "peak_gflops": peak,
                         "fraction_of_peak": row["gflops"] / peak})
            print(f"utilisation {size} {p.precision}: {row['gflops']:.1f} of {peak:.0f} GFLOP/s "
                  f"{p.precision} peak at {threads} thread(s) ({row['gflops'] / peak:.0%})")
    return rows


def _is_operator(event) -> bool:
    """An operator (aten::mm, ...), not a label (a phase, Optimizer.step#AdamW.step) nor an autograd node
    (their self time is Python and autograd-engine work between operators)."""
    return ("::" in event.key and not event.key.startswith("autograd::")
            and not getattr(event, "is_user_annotation", False) and event.key not in PHASES)


def step_profile(profile: str, size: str | None = None, steps: int = 5, top: int = 12) -> dict:
    """One training step of `size` (default: the profile's largest grid size) under torch.profiler
    (CPU), at the profile's precision, compile setting and threads: the `top` operators by self CPU
    time, the step's phases (`PHASES`; "batch" is the span corruption that `lib.train` runs in each
    step, which the timed parts leave out), each as a share of the wall time of a step, averaged
    over `steps` profiled steps after the warm-up."""
    p = get_profile(profile)
    size = size or p.grid[-1]
    cfg, total_vocab = _bench_config(profile, size)
    with profile_threads(profile) as threads:
        model, optimizer, step = training_step(cfg, total_vocab, p.precision, p.compile,
                                               *step_data(cfg, total_vocab, steps), labelled=True)
        objective = SpanCorruption(cfg.data.input_length, total_vocab, cfg.data.noise_density,
                                   cfg.data.mean_noise_span)
        raw = np.random.default_rng(1).integers(3, cfg.data.vocab_size, (cfg.optim.batch_size, objective.raw_length))
        for i in range(1 + WARMUP_STEPS):
            step(i)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for i in range(1 + WARMUP_STEPS, 1 + WARMUP_STEPS + steps):
                with torch.profiler.record_function("batch"):
                    objective(raw, np.random.default_rng(i))
                step(i)
            step_us = (time.perf_counter() - start) / steps * 1e6
    events = prof.key_averages()
    ops = sorted((e for e in events if _is_operator(e)), key=lambda e: e.self_cpu_time_total, reverse=True)
    in_ops = sum(e.self_cpu_time_total for e in ops) / steps / step_us
    table = [{"op": e.key, "calls_per_step": e.count / steps, "ms_per_step": e.self_cpu_time_total / steps / 1e3,
              "share": e.self_cpu_time_total / steps / step_us} for e in ops[:top]]
    phases = {e.key: e.cpu_time_total / steps / step_us for e in events if e.key in PHASES}
    result = {"preset": size, "params": sum(q.numel() for q in model.parameters()), "precision": p.precision,
              "compiled": p.compile, "threads": threads, "kernels": torch.backends.cpu.get_cpu_capability(),
              "optimizer": optimizer_name(optimizer), "steps": steps, "step_ms": step_us / 1e3,
              "op_calls_per_step": sum(e.count for e in ops) / steps,
              "matmul_share": sum(e.self_cpu_time_total for e in ops if e.key in MATMUL_OPS) / steps / step_us,
              "outside_ops_share": max(0.0, 1 - in_ops), "ops": table,
              "phases": [{"phase": name, "share": phases.get(name, 0.0)} for name in PHASES]}
    print(f"step_profile {size} ({p.precision}, {threads} thread(s)): {result['step_ms']:.1f} ms a step, "
          f"{result['op_calls_per_step']:.0f} op calls, matmuls {result['matmul_share']:.0%}, outside ops "
          f"{result['outside_ops_share']:.0%}; top: " + ", ".join(f"{r['op']} {r['share']:.0%}" for r in table[:5]))
    return result


def moe_proxy(profile: str, steps: int) -> list[dict]:
    """Training speed of finding 3.6's pairs on a quiet machine, [dense row, MoE row] for each pair
    (`sweeps.moe_pairs`): a dense size and its MoE proxy (the next smaller size as a top-2 MoE), eager
    fp32 on one thread, so the ratio compares the models rather than kernels or thread scaling (run
    times in the cache vary with whatever else the machine was doing). Each row: input tokens/s, the
    model's FLOPs per input token (`run_flops_per_input_token`: k experts per token) and those
    PyTorch's FLOP counter saw (with the MoE's empty capacity slots); each MoE row adds its wall-clock
    and FLOP ratios to its dense partner."""
    from lib.models import run_flops_per_input_token

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for backbone, (dense, experts) in sweeps.moe_pairs(profile).items():
            pair = [train_throughput(profile, dense, "fp32", steps),
                    train_throughput(profile, backbone, "fp32", steps, experts=experts)]
            for row, size, moe in zip(pair, (dense, backbone), (0, experts)):
                cfg, total_vocab = _moe_bench_config(profile, size, moe)
                row.update(threads=1, flops_per_token=run_flops_per_input_token(cfg, total_vocab),
                           counted_flops_per_token=row["gflops"] * 1e9 / row["tokens_per_s"])
            pair[1].update(wall_ratio=pair[0]["tokens_per_s"] / pair[1]["tokens_per_s"],
                           flops_ratio=pair[1]["flops_per_token"] / pair[0]["flops_per_token"])
            for row in pair:
                print(f"moe_proxy {row['preset']}: {row['tokens_per_s']:,.0f} input tokens/s, "
                      f"{row['flops_per_token'] / 1e6:.2f} MFLOPs per token ({row['counted_flops_per_token'] / 1e6:.2f} counted)")
            print(f"moe_proxy: {pair[1]['preset']} costs {pair[1]['flops_ratio']:.2f}x the FLOPs of {dense} and "
                  f"{pair[1]['wall_ratio']:.2f}x its wall-clock per token (fp32, one thread)")
            rows += pair
    finally:
        torch.set_num_threads(threads)
    return rows


def sweep_layouts(profile: str) -> list[tuple[int, int]]:
    """(processes, threads per process) layouts a sweep of this profile can train in: with a fixed
    per-run thread count (the cpu profile: 1), one process alone or as many as the cores hold; else
    one process with every core or one single-thread process per core."""
    p, cores = get_profile(profile), os.cpu_count() or 1
    if p.threads:
        return [(n, p.threads) for n in sorted({1, max(1, cores // p.threads)})]
    return [(n, max(1, cores // n)) for n in sorted({1, cores})]


def _side_by_side(profile: str, size: str, processes: int, threads: int, steps: int) -> list[float]:
    """Input tokens/s of `processes` concurrent training processes of `threads` threads each, timed together."""
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
    """Runs per hour of the grid's presets in each layout of `sweep_layouts` (the cpu profile: one
    one-thread process alone vs one per core, side by side).

    Counts training steps only (a run's T input tokens at the measured speed); start-up, compile
    and evaluation cost the same in every layout. `best` is the faster number of processes per
    preset, which `runs.default_parallel` (and so `run_sweep`) uses unless the measurement was quick."""
    p, rows = get_profile(profile), []
    for size in sizes:
        for processes, threads in sweep_layouts(profile):
            tokens_per_s = _side_by_side(profile, size, processes, threads, steps)
            rows.append({"preset": size, "processes": processes, "threads_per_process": threads,
                         "runs_per_hour": 3600 * sum(tokens_per_s) / p.total_tokens})
            print(f"sweep {size}: {processes} process(es) x {threads} thread(s): "
                  f"{rows[-1]['runs_per_hour']:.1f} runs/hour")
    best = {size: max((r for r in rows if r["preset"] == size), key=lambda r: r["runs_per_hour"])["processes"]
            for size in sizes}
    return {"profile": profile, "steps": steps, "quick": quick, "cores": os.cpu_count() or 1, "modes": rows,
            "best": best}


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


def measure(part: str, profile: str, quick: bool) -> dict:
    """The bench.json keys of one part (quick: a few steps, one round, and only the first preset of each list)."""
    steps, first = (3, 1) if quick else (20, None)
    if part == "matmul":
        with profile_threads(profile) as threads:
            peak = {dtype: matmul_gflops(dtype, repeats=3 if quick else 10) for dtype in ("fp32", "bf16")}
        facts = cpu_facts()
        sentence = bf16_sentence(facts, peak, threads)
        print(sentence)
        return {"matmul_gflops": peak, "matmul_threads": threads, "cpu": facts, "bf16_native": sentence}
    if part == "train":
        with profile_threads(profile):
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
        return {"peer": peer(profile, goal_presets(profile)[:first], steps, rounds=1 if quick else 2)}
    if part == "utilisation":
        return {"utilisation": utilisation(profile, goal_presets(profile)[:first], steps, 3 if quick else 10)}
    if part == "step_profile":
        return {"step_profile": step_profile(profile, steps=2 if quick else 5)}
    if part == "sweep_modes":
        return {"sweep_modes": sweep_modes(profile, get_profile(profile).grid[:first], 6 if quick else 40, quick)}
    if part == "moe_proxy":
        with profile_threads(profile):
            return {"moe_proxy": moe_proxy(profile, steps)}
    if part == "book_cpu_hours":
        hours = book_cpu_hours()
        print(f"book: {hours:.2f} two-core hours of cpu runs")
        return {"book_cpu_hours": hours}
    raise ValueError(f"unknown bench part {part!r}; choose from {PARTS}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="default: <cache>/bench.json")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), metavar="PART",
                        help=f"parts to measure (default: all): {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps, first preset only: to test the bench (marked quick in bench.json)")
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
    for key, part in RETIRED.items():
        result.pop(key, None)
        result.get("measured", {}).pop(part, None)
    for part in args.only:  # each part is written as soon as it is measured
        result.update(measure(part, args.profile, args.quick), profile=args.profile,
                      threads=bench_threads(args.profile), **environment(torch.device("cpu")))
        quick = args.quick and part in QUICK_PARTS
        result.setdefault("measured", {})[part] = {"git_sha": result["git_sha"], "quick": quick,
                                                   "profile": args.profile}
        runs.write_atomic(out, result)
    print(f"wrote {out}")


# --- the reproducibility page's words (it renders whatever bench.json holds) -------------------

def _rows(value) -> list[dict]:
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


def not_measured(bench: dict, key: str, part: str, fields: tuple[str, ...] = ()) -> str | None:
    """None if bench.json holds `key` in its current form (every row with `fields`); else the page's
    note saying how to measure it (an older bench.json lacks the keys of newer parts)."""
    if key in bench and all(f in row for row in _rows(bench[key]) for f in fields):
        return None
    older = " (bench.json holds an older form of it)" if key in bench else ""
    return f"*`{key}`: not measured yet{older}: run `python -m lib.bench --only {part}`.*"


def numerics_paragraph(bench: dict) -> str:
    """Why the cpu profile trains in fp32 with pinned kernels and one thread per run, and (from
    bench.json) whether bf16 is native on the benchmarked CPU."""
    p = get_profile("cpu")
    bf16_profiles = [name for name in ("gpu", "paper") if get_profile(name).precision == "bf16"]
    pin = ", ".join(f"`{k}={v}`" for k, v in PINNED_KERNEL_ENV.items())
    kernels = (f"ATen's and MKL's CPU kernels pinned to {p.kernels.upper()} ({pin}, set by `import lib` before torch "
               f"loads)" if p.kernels != "default" else "the kernels torch picks for the CPU")
    threads = (f"{p.threads} torch thread{'s' if p.threads != 1 else ''} per run (a sweep fills the cores with runs "
               f"side by side)" if p.threads else "as many torch threads as the cores allow")
    bf16 = (f"Measured here: {bench['bf16_native']}" if bench.get("bf16_native") else
            "Whether this machine computes bf16 natively: not measured yet: run `python -m lib.bench --only matmul`.")
    return (f"The `cpu` profile, which made this book's results, trains in {p.precision}, with {kernels} and "
            f"{threads}. A run is then a pure function of its config: the same numbers, bit for bit, on any x86-64 "
            f"CPU, whoever retrains it and whatever else the machine is doing; `tests/test_numerics.py` retrains a "
            f"reference config in a fresh process and checks its numbers bitwise against a committed reference. "
            f"bf16 would give that up: its matmuls run through oneDNN, which the pin does not reach and which uses "
            f"whatever bf16 instructions the CPU has (or emulates them), so bf16 rounding and speed change from one "
            f"CPU to the next. {bf16} bf16 autocast stays the default of the "
            + " and ".join(f"`{name}`" for name in bf16_profiles) + " profiles.")


if __name__ == "__main__":
    main()
