"""Turn a short GPU window into committed runs: train a profile's cells in priority order until a
deadline, write each result as it lands, and import the returned results into the run cache.

    python -m lib.gpu_window plan --profile gpu              # the cells, their FLOPs and estimated minutes
    python -m lib.gpu_window sweep --profile gpu --budget 420 --lanes 3 --out $OUT
    python -m lib.gpu_window import DIR_OR_FILES...          # here, after the call returns
    python -m lib.gpu_window report CACHE... --out check.json  # tools/gpu_check.sh's summary

Priority: the 1-epoch size ladder of finding 3.1 (seed-major, so a cut-short window still holds a
whole ladder for its first seed), then the 3.2 grid's most repeated cells, then 16 epochs, then the
rest of the grid. Cells already in the cache (committed results travel with the working tree) are
skipped. `--lanes` worker processes share the GPU (small models leave it idle between kernel
launches) and claim cells in that order. A worker starts a cell only if its estimated time (its
FLOPs over the FLOP rate this worker has measured so far) ends before the deadline. Each worker
rewrites `<out>/lane<k>.json` atomically after every run, so whatever is cut short, what finished
comes back complete.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lib import runs, sweeps
from lib.config import RunConfig
from lib.models import run_flops_per_input_token
from lib.paths import cache_root, repo_root
from lib.profiles import get_profile
from lib.tokenizer import NUM_SENTINELS

FIRST_GUESS_FLOPS_PER_SECOND = 2e13  # before a worker has measured its own rate (an H200 runs small T5s faster)
RUN_OVERHEAD_SECONDS = 15.0  # model build, evaluations and the final references, per run
EPOCH_PRIORITY = (1, 256, 16, 64, 4)


def plan(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """The cells of findings 3.1 and 3.2 in the order a short window should train them."""
    ladder = sweeps.tokens_vs_params(profile, seeds)
    grid = sweeps.repetition_grid(profile, seeds)
    ordered = sorted(grid, key=lambda c: (EPOCH_PRIORITY.index(c.data.epochs), c.seed))
    unique: dict[str, RunConfig] = {}
    for cfg in ladder + ordered:
        unique.setdefault(cfg.key(), cfg)
    return list(unique.values())


def run_flops(cfg: RunConfig) -> float:
    return run_flops_per_input_token(cfg, cfg.data.vocab_size + NUM_SENTINELS) * cfg.data.total_tokens


def estimate_seconds(cfg: RunConfig, flops_per_second: float) -> float:
    return run_flops(cfg) / flops_per_second + RUN_OVERHEAD_SECONDS


def _claim(folder: Path, cfg: RunConfig) -> bool:
    """Take a cell for this worker (False if another worker has it)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder / cfg.key(), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _write_lane(out: Path, lane: int, payload: dict) -> None:
    runs.write_atomic(out / f"lane{lane}.json", payload)


def measured_rate(out: Path) -> float:
    """FLOPs per second of one lane, from every run the lanes have finished so far in this window."""
    flops = seconds = 0.0
    for path in out.glob("lane*.json"):
        try:
            entries = json.loads(path.read_text())["results"]
        except (OSError, ValueError, KeyError):
            continue  # being replaced right now; the next cell reads it
        for entry in entries:
            flops += run_flops(RunConfig.from_dict(entry["result"]["config"]))
            seconds += entry["seconds"]
    return flops / seconds if seconds else FIRST_GUESS_FLOPS_PER_SECOND


def work(profile: str, seeds, deadline: float, lane: int, out: Path, claims: Path) -> dict:
    """One worker: claim and train cells in priority order while each is expected to end in time."""
    payload = {"lane": lane, "profile": profile, "results": [], "skipped": []}
    for cfg in plan(profile, seeds):
        if runs.load_cached(cfg) is not None:
            continue
        rate = measured_rate(out)
        if time.time() + estimate_seconds(cfg, rate) > deadline:
            payload["skipped"].append({"key": cfg.key(), "label": cfg.label, "reason": "would end after the deadline"})
            continue
        if not _claim(claims, cfg):
            continue
        started = time.time()
        result = runs.run(cfg, allow_train=True, progress=False)
        seconds = time.time() - started
        meta = result["meta"]
        print(f"lane {lane}: {cfg.label} seed {cfg.seed}: {seconds:.0f} s, val loss {result['final']['val_loss']:.3f}, "
              f"{meta['tokens_per_second']:,.0f} tok/s, {meta['train_flops_per_second'] / 1e12:.1f} TFLOP/s"
              + (f" ({meta['fraction_of_bf16_peak']:.1%} of bf16 peak)" if "fraction_of_bf16_peak" in meta else ""),
              flush=True)
        payload["results"].append({"key": cfg.key(), "seconds": seconds, "result": result})
        _write_lane(out, lane, payload)
    _write_lane(out, lane, payload)
    return payload


def sweep(profile: str, seeds, budget_seconds: float, lanes: int, out: Path) -> list[dict]:
    """Start `lanes` workers that share the device until `budget_seconds` from now; their lane files."""
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + budget_seconds
    claims = cache_root() / "gpu_claims" / str(os.getpid())
    command = [sys.executable, "-m", "lib.gpu_window", "work", "--profile", profile, "--deadline", str(deadline),
               "--out", str(out), "--claims", str(claims), "--seeds", *map(str, seeds)]
    workers = [subprocess.Popen([*command, "--lane", str(k)], cwd=repo_root()) for k in range(lanes)]
    failed = [k for k, w in enumerate(workers) if w.wait()]
    if failed:
        raise SystemExit(f"gpu_window: lanes {failed} failed (their finished runs are in {out})")
    return [json.loads((out / f"lane{k}.json").read_text()) for k in range(lanes)]


class ImportRefused(ValueError):
    """A returned result that is truncated, incomplete, or stored under a key its config does not have."""


def read_returned(paths: list[Path]) -> list[dict]:
    """Every result in these lane files (or folders of them), each checked; raises on the first bad one."""
    files = [f for p in paths for f in (sorted(p.glob("lane*.json")) if p.is_dir() else [p])]
    if not files:
        raise ImportRefused(f"no lane*.json files in {[str(p) for p in paths]}")
    results = []
    for f in files:
        try:
            payload = json.loads(f.read_text())
            entries = payload["results"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ImportRefused(f"{f} is unreadable or truncated ({error}); nothing was imported") from error
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ImportRefused(f"{f} holds no list of results; nothing was imported")
        for entry in entries:
            result = entry.get("result")
            if not isinstance(result, dict) or not runs.is_complete(result):
                raise ImportRefused(f"{f}: the result stored as {entry.get('key')} is incomplete; nothing was imported")
            try:
                key = RunConfig.from_dict(result["config"]).key()
            except (TypeError, KeyError, ValueError) as error:
                raise ImportRefused(f"{f}: the result stored as {entry.get('key')} has no valid config ({error}); "
                                    "nothing was imported") from error
            if key != entry.get("key"):
                raise ImportRefused(f"{f}: a result stored as {entry.get('key')} has config key {key}; "
                                    "nothing was imported")
            results.append(result)
    return results


def import_results(paths: list[Path]) -> list[str]:
    """Check every returned result, then write them all into the run cache; the keys written."""
    results = read_returned(paths)
    keys = []
    for result in results:
        cfg = RunConfig.from_dict(result["config"])
        runs.write_atomic(runs.result_path(cfg), result)
        keys.append(cfg.key())
    return keys


REPORTED_FINAL = ("val_loss", "val_content_loss", "val_first_loss", "val_later_loss", "val_encoder_use")
REPORTED_META = ("device", "world_size", "tokens_per_second", "train_flops_per_second", "bf16_matmul_peak_flops",
                 "fraction_of_bf16_peak", "wall_seconds", "train_seconds")


def check_report(caches: list[Path], seconds: float) -> dict:
    """tools/gpu_check.sh's summary: speed and final metrics of the run in each cache, and whether
    they agree."""
    report = {"seconds": seconds, "runs": {}}
    for cache in caches:
        (path,) = sorted((cache / "runs").glob("*.json"))
        result = json.loads(path.read_text())
        report["runs"][cache.name] = {"key": path.stem, **{k: result["final"].get(k) for k in REPORTED_FINAL},
                                      **{k: result["meta"].get(k) for k in REPORTED_META},
                                      **{k: v for k, v in result["reference"].items() if k.endswith("_loss")}}
    losses = [r["val_loss"] for r in report["runs"].values()]
    report["max_val_loss_difference"] = max(losses) - min(losses)
    return report


def describe_plan(profile: str, seeds) -> str:
    rate = FIRST_GUESS_FLOPS_PER_SECOND
    lines, total = [], 0.0
    for cfg in plan(profile, seeds):
        seconds = estimate_seconds(cfg, rate)
        total += seconds
        cached = "cached" if runs.load_cached(cfg) is not None else ""
        lines.append(f"{cfg.key()}  {cfg.label:<22} seed {cfg.seed}  {run_flops(cfg):.2e} FLOPs  "
                     f"~{seconds / 60:.1f} min  {cached}")
    lines.append(f"{len(lines)} cells, ~{total / 60:.0f} min in one lane at {rate / 1e12:.0f} TFLOP/s "
                 f"plus {RUN_OVERHEAD_SECONDS:.0f} s per run")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("plan", "sweep", "work", "import", "report"))
    parser.add_argument("paths", nargs="*", type=Path, help="import: lane files or folders of them; report: caches")
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=float, default=420, help="sweep: seconds from now until the deadline")
    parser.add_argument("--lanes", type=int, default=3, help="sweep: worker processes sharing the device")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "_build/gpu_window")))
    parser.add_argument("--deadline", type=float, help="work: the deadline (epoch seconds)")
    parser.add_argument("--lane", type=int, default=0)
    parser.add_argument("--claims", type=Path)
    parser.add_argument("--seconds", type=float, default=0.0, help="report: the check's wall-clock seconds")
    args = parser.parse_args(argv)
    if args.action == "plan":
        print(describe_plan(args.profile, args.seeds))
    elif args.action == "sweep":
        lanes = sweep(args.profile, args.seeds, args.budget, args.lanes, args.out)
        done = sum(len(lane["results"]) for lane in lanes)
        print(f"gpu_window: {done} runs finished in {args.out}; import them with "
              f"python -m lib.gpu_window import {args.out}")
    elif args.action == "work":
        work(args.profile, args.seeds, args.deadline, args.lane, args.out, args.claims)
    elif args.action == "report":
        report = check_report(args.paths, args.seconds)
        runs.write_atomic(args.out, report)
        print(json.dumps(report, indent=1))
    else:
        try:
            keys = import_results(args.paths)
        except ImportRefused as error:
            sys.exit(f"gpu_window import refused: {error}")
        print(f"imported {len(keys)} results into {runs.runs_dir()}")


if __name__ == "__main__":
    main()
