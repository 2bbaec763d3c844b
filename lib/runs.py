"""The run cache: `data_cache/runs/<key>.json`, written atomically, one lock per key.

`run(cfg)` returns a cached result or trains it; `run_sweep(cfgs)` returns a tidy table with one
row per run, training cache misses one after another or in several processes side by side. A
corrupt or truncated file (or one whose config does not match) is redone.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
from filelock import FileLock

from lib import describe, quiet
from lib.config import RunConfig
from lib.paths import cache_root, read_bench, repo_root
from lib.weights import weights_path

REQUIRED = ("config", "curve", "final", "reference", "meta")


class MissingRunsError(RuntimeError):
    """Raised when results are not cached and training is not allowed."""


def runs_dir() -> Path:
    return cache_root() / "runs"


def result_path(cfg: RunConfig) -> Path:
    return runs_dir() / f"{cfg.key()}.json"


def allow_train_default() -> bool:
    return os.environ.get("REPEAT_ALLOW_TRAIN", "0") not in ("", "0", "false", "no")


def load_cached(cfg: RunConfig, need_weights: bool = False) -> dict | None:
    """The cached result, or None if absent, unreadable, incomplete or for another config (or, with
    `need_weights`, if its final weights are not in `data_cache/weights/`)."""
    if need_weights and not weights_path(cfg).exists():
        return None
    path = result_path(cfg)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not is_complete(result):
        return None
    try:
        if RunConfig.from_dict(result["config"]).key() != cfg.key():
            return None
    except (TypeError, KeyError, ValueError):
        return None
    return result


def write_atomic(path: Path, payload: dict) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(cfg: RunConfig, allow_train: bool | None = None, force: bool = False, progress: bool = True,
        need_weights: bool = False) -> dict:
    """The result of one config: from the cache, or trained now (if allowed) and cached, with its
    final weights. `need_weights` retrains a cached result whose weights are missing."""
    from lib.train import train  # torch is imported only when training

    allow_train = allow_train_default() if allow_train is None else allow_train
    if not force and (cached := load_cached(cfg, need_weights)) is not None:
        return cached
    if not allow_train:
        raise MissingRunsError(_missing_message([cfg], need_weights))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    is_main = int(os.environ.get("RANK", "0")) == 0
    lock = FileLock(str(runs_dir() / f"{cfg.key()}.lock")) if is_main and not distributed else None
    runs_dir().mkdir(parents=True, exist_ok=True)
    try:
        with lock if lock is not None else contextlib.nullcontext():
            if not force and not distributed and (cached := load_cached(cfg, need_weights)) is not None:
                return cached  # finished by another sweep while we waited for the lock
            result = train(cfg, checkpoint_dir=cache_root() / "ckpt" / cfg.key(), progress=progress,
                           weights_file=weights_path(cfg)).to_dict()
            if is_main:
                write_atomic(result_path(cfg), result)
    finally:  # also when training fails or another process finished first
        if lock is not None:
            Path(lock.lock_file).unlink(missing_ok=True)
    return result


def _missing_message(cfgs: list[RunConfig], need_weights: bool = False) -> str:
    lines = [f"{len(cfgs)} run(s) are not in the cache {runs_dir()}"
             + (" with their weights (data_cache/weights/):" if need_weights else ":")]
    lines += [f"  {c.key()}  {c.label or c.model.name} U={c.data.unique_tokens} epochs={c.data.epochs} "
              f"corpus={c.data.corpus} seed={c.seed}" for c in cfgs[:20]]
    if len(cfgs) > 20:
        lines.append(f"  ... and {len(cfgs) - 20} more")
    profile = cfgs[0].profile
    lines.append(f"Train them with allow_train=True, or set REPEAT_ALLOW_TRAIN=1 and rerun, or run "
                 f"`python -m lib.batch --profile {profile}` (add --only NN for one notebook).")
    return "\n".join(lines)


def flatten(result: dict) -> dict:
    """One table row: the config's result-changing fields, final metrics, reference and key meta."""
    cfg = RunConfig.from_dict(result["config"])
    row = {"key": cfg.key(), "label": cfg.label, "profile": cfg.profile, "size": cfg.model.name,
           "corpus": cfg.data.corpus, "unique_tokens": cfg.data.unique_tokens, "epochs": cfg.data.epochs,
           "total_tokens": cfg.data.total_tokens, "seed": cfg.seed, "lr": cfg.optim.lr,
           "dropout": cfg.model.dropout, "weight_decay": cfg.optim.weight_decay,
           "objective": cfg.data.objective, "architecture": describe.architecture(cfg),
           "regularizer": describe.regularizer(cfg)}
    row.update(result["final"])
    row.update(result["reference"])
    meta = result["meta"]
    row.update({k: meta.get(k) for k in ("params", "non_embedding_params", "active_params", "flops_per_input_token",
                                         "train_flops", "wall_seconds",
                                         "tokens_per_second", "eval_seconds", "train_seconds")})
    return row


def default_parallel(cfgs: list[RunConfig]) -> int:
    """How many processes should train these configs: the faster mode that `python -m lib.bench`
    measured for their profile and sizes (`sweep_modes` in bench.json, not a quick one), else 1."""
    modes = read_bench().get("sweep_modes")
    if not modes or modes.get("quick") or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return 1
    return min((modes["best"].get(c.model.name, 1) if c.profile == modes["profile"] else 1 for c in cfgs), default=1)


def _train_side_by_side(cfgs: list[RunConfig], parallel: int, progress: bool, need_weights: bool) -> None:
    """Train configs in `parallel` concurrent `python -m lib.train` processes, sharing the CPU threads;
    each process writes its result into the cache itself (atomically, under its lock)."""
    env = {**os.environ, "REPEAT_THREADS": str(max(1, (os.cpu_count() or 1) // parallel))}

    def train_one(cfg: RunConfig, folder: str) -> None:
        config = Path(folder) / f"{cfg.key()}.json"
        config.write_text(json.dumps(cfg.to_dict()))
        flags = ["--need-weights"] if need_weights else []
        out = subprocess.run([sys.executable, "-m", "lib.train", "--config", str(config), *flags], cwd=repo_root(),
                             env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"training {cfg.key()} failed:\n{out.stderr[-3000:]}")

    unique = list({cfg.key(): cfg for cfg in cfgs}.values())
    with tempfile.TemporaryDirectory(prefix="sweep-configs-") as folder, ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(train_one, cfg, folder) for cfg in unique]
        for future in quiet.bar(as_completed(futures), show=progress, total=len(futures),
                                desc=f"runs ({parallel} processes)"):
            future.result()


def run_sweep(cfgs: list[RunConfig], allow_train: bool | None = None, progress: bool = True,
              parallel: int | None = None, need_weights: bool = False) -> pd.DataFrame:
    """Results of many configs as a DataFrame (one row per run); trains cache misses if allowed, in
    `parallel` processes side by side (default: `default_parallel`), or in this process if 1.
    `need_weights` also counts a result whose final weights are missing as a miss."""
    allow_train = allow_train_default() if allow_train is None else allow_train
    results = [load_cached(c, need_weights) for c in cfgs]
    missing = [c for c, r in zip(cfgs, results) if r is None]
    if missing and not allow_train:
        raise MissingRunsError(_missing_message(missing, need_weights))
    parallel = default_parallel(missing) if parallel is None else parallel
    if quiet.progress(progress):
        print(f"{len(cfgs) - len(missing)}/{len(cfgs)} cached" + (f", training {len(missing)}" if missing else "")
              + (f" in {parallel} processes" if missing and parallel > 1 else ""))
    if parallel > 1 and len(missing) > 1:
        _train_side_by_side(missing, parallel, progress, need_weights)
        results = [r or load_cached(c, need_weights) for c, r in zip(cfgs, results)]
    for i, cfg in enumerate(quiet.bar(cfgs, show=progress and bool(missing) and parallel <= 1, desc="runs")):
        if results[i] is None:
            results[i] = run(cfg, allow_train=allow_train, progress=progress, need_weights=need_weights)
    return pd.DataFrame([flatten(r) for r in results])


def _cached_or_raise(cfgs: list[RunConfig]) -> list[dict]:
    results = [load_cached(cfg) for cfg in cfgs]
    missing = [cfg for cfg, result in zip(cfgs, results) if result is None]
    if missing:
        raise MissingRunsError(_missing_message(missing))
    return results


def curves(cfgs: list[RunConfig]) -> pd.DataFrame:
    """Long table of every cached evaluation of these configs (one row per run and evaluation)."""
    rows = []
    for result in _cached_or_raise(cfgs):
        base = {k: v for k, v in flatten(result).items()
                if k in ("key", "label", "size", "corpus", "unique_tokens", "epochs", "seed", "lr", "dropout",
                         "objective", "architecture", "regularizer")}
        rows += [{**base, **point} for point in result["curve"]]
    return pd.DataFrame(rows)


def is_complete(result: dict) -> bool:
    return all(k in result for k in REQUIRED) and bool(result["curve"])


def cached_results():
    """(key, result) for every readable, complete result file in the cache; others are skipped."""
    for path in sorted(runs_dir().glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if is_complete(result):
            yield path.stem, result


def all_results() -> list[dict]:
    """Every readable, complete result in the cache (for the run ledger)."""
    return [result for _, result in cached_results()]


def probe_table(cfgs: list[RunConfig]) -> pd.DataFrame:
    """Final metrics of each run on every corpus's held-out set (the shared probe), long format."""
    rows = []
    for cfg, result in zip(cfgs, _cached_or_raise(cfgs)):
        for probe, metrics in result["final"].get("probe", {}).items():
            rows.append({"key": cfg.key(), "corpus": cfg.data.corpus, "epochs": cfg.data.epochs,
                         "seed": cfg.seed, "probe": probe, **metrics})
    return pd.DataFrame(rows)
