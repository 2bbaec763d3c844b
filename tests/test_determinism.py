"""Trust: the same config gives bit-identical metrics in fresh processes and when a sweep trains
its runs side by side; and the bench's book-cost helper (the other bench tests: tests/test_bench.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import lib.train
from lib import bench, runs
from lib.paths import repo_root


def _numbers(result: dict) -> dict:
    """What a run computes, as it reads back from JSON (meta holds timings and is left out)."""
    return json.loads(json.dumps({k: result[k] for k in ("curve", "final", "reference")}))


def test_fresh_processes_give_identical_metrics(base_cfg, base_result, cache_dir, tmp_path):
    """`python -m lib.train --config cfg.json --force` in two fresh processes, each with its own
    cache: bit-identical curves and final metrics, equal to this process's run of the config."""
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(base_cfg.to_dict()))
    caches = [tmp_path / f"cache{i}" for i in (0, 1)]
    children = []
    for cache in caches:
        for part in ("tokenizers", "tokens"):  # reuse the session's tokenizer and token stores
            shutil.copytree(cache_dir / part, cache / part)
        env = {**os.environ, "REPEAT_CACHE_DIR": str(cache)}
        children.append(subprocess.Popen([sys.executable, "-m", "lib.train", "--config", str(config), "--force"],
                                         cwd=repo_root(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True))
    for child in children:
        _, err = child.communicate(timeout=240)
        assert child.returncode == 0, err[-3000:]
    first, second = (json.loads((cache / "runs" / f"{base_cfg.key()}.json").read_text()) for cache in caches)
    assert _numbers(first) == _numbers(second) == _numbers(base_result)


def test_parallel_sweep_matches_sequential(smoke, store, monkeypatch):
    """`run_sweep(parallel=2)` trains the misses in two processes of one thread each; their results
    equal training the same configs here, one after the other (the configs fix one thread, as a
    thread count changes the numbers); cached runs are then only read."""
    cfgs = [smoke.config("XS", unique_tokens=2**12, epochs=2, seed=seed, label="side by side").replace(threads=1)
            for seed in (21, 22)]
    table = runs.run_sweep(cfgs, allow_train=True, progress=False, parallel=2)
    assert table["key"].tolist() == [cfg.key() for cfg in cfgs]
    for cfg in cfgs:
        stored = runs.load_cached(cfg)
        assert stored["meta"]["threads"] == 1
        assert _numbers(stored) == _numbers(lib.train.train(cfg, progress=False).to_dict())

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cached sweep started a training process")

    monkeypatch.setattr(runs.subprocess, "run", no_subprocess)
    assert runs.run_sweep(cfgs, allow_train=True, progress=False, parallel=2).equals(table)


def test_default_parallel_reads_the_bench(smoke, tmp_path, monkeypatch):
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path))
    xs, s = smoke.config("XS"), smoke.config("S")
    assert runs.default_parallel([xs]) == 1  # no bench.json
    modes = {"profile": "smoke", "quick": False, "best": {"XS": 2, "S": 1}}
    runs.write_atomic(tmp_path / "bench.json", {"sweep_modes": modes})
    assert runs.default_parallel([xs]) == 2
    assert runs.default_parallel([xs, s]) == 1  # the slowest choice among the sizes
    assert runs.default_parallel([xs.replace(profile="cpu")]) == 1  # measured for another profile
    runs.write_atomic(tmp_path / "bench.json", {"sweep_modes": {**modes, "quick": True}})
    assert runs.default_parallel([xs]) == 1  # a quick measurement is not trusted


# --- bench helpers -----------------------------------------------------------------------------

def _fake_result(cfg, wall_seconds: float, threads: int) -> dict:
    meta = {"wall_seconds": wall_seconds, "threads": threads, "world_size": 1, "train_flops": 1.0}
    return {"config": cfg.to_dict(), "curve": [{"step": 0}], "final": {}, "reference": {}, "meta": meta}


def test_book_cpu_hours(smoke, tmp_path, monkeypatch):
    """Sum of wall seconds x threads / 2 over the cache's cpu runs; other profiles and broken files ignored."""
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "runs"
    assert bench.book_cpu_hours() == 0.0
    cpu = smoke.config("XS").replace(profile="cpu")
    fakes = {"a": _fake_result(cpu, 3600, 2), "b": _fake_result(cpu.replace(seed=1), 1800, 1),
             "c": _fake_result(smoke.config("XS", seed=2), 36000, 2)}
    for name, result in fakes.items():
        runs.write_atomic(folder / f"{name}.json", result)
    (folder / "broken.json").write_text("{")
    assert bench.book_cpu_hours() == pytest.approx(1.0 + 0.25)


def test_accelerate_config_is_multi_gpu_and_leaves_precision_to_the_run():
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(repo_root() / "configs" / "accelerate_multi_gpu.yaml"))
    assert (config.distributed_type, config.mixed_precision, config.use_cpu) == ("MULTI_GPU", "no", False)
