"""The run cache and training loop through their real entry points, on the smoke profile."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lib.train
from lib import runs
from lib.config import RunConfig
from lib.paths import repo_root

CURVE_KEYS = {"tokens", "val_loss", "val_accuracy", "val_content_accuracy", "train_loss"}
FINAL_KEYS = {"val_loss", "best_val_loss", "val_accuracy", "val_content_accuracy", "best_val_accuracy"}
META_KEYS = {"git_sha", "versions", "corpus_fingerprint", "device", "world_size", "wall_seconds"}


def _no_training(*args, **kwargs):
    raise AssertionError("train() was called, but the result should have come from the cache")


def _json(value):
    """`value` as it reads back from a JSON file."""
    return json.loads(json.dumps(value))


def _numbers(result: dict) -> dict:
    """What a run computes: curve, final metrics and reference (not meta, which holds timings)."""
    return _json({"curve": result["curve"], "final": result["final"], "reference": result["reference"]})


# --- one run ---------------------------------------------------------------------------------

def test_run_writes_a_complete_result(base_cfg, base_result, cache_dir):
    path = cache_dir / "runs" / f"{base_cfg.key()}.json"
    assert runs.result_path(base_cfg) == path.resolve() and path.exists()
    stored = json.loads(path.read_text())
    assert _numbers(stored) == _numbers(base_result) and stored["config"] == _json(base_result["config"])
    assert RunConfig.from_dict(stored["config"]) == base_cfg
    curve = stored["curve"]
    assert all(CURVE_KEYS <= set(point) for point in curve)
    assert [p["tokens"] for p in curve] == sorted({p["tokens"] for p in curve})
    assert curve[0]["tokens"] == 0 and curve[-1]["tokens"] == base_cfg.data.total_tokens
    assert FINAL_KEYS <= set(stored["final"]) and META_KEYS <= set(stored["meta"])
    assert stored["final"]["val_loss"] == curve[-1]["val_loss"]
    assert stored["final"]["best_val_loss"] == min(p["val_loss"] for p in curve)
    assert {"unigram_content_loss", "majority_content_accuracy"} <= set(stored["reference"])
    assert stored["meta"]["world_size"] == 1
    assert curve[-1]["val_loss"] < curve[0]["val_loss"] - 0.5  # it learned something
    assert not (cache_dir / "ckpt" / base_cfg.key()).exists()  # checkpoints removed when done


def test_training_is_deterministic(base_cfg, base_result, monkeypatch):
    """Retrained (force=True), a config gives exactly the same numbers; and `run` returns the same
    value whether it just trained the config or reads it from the cache (lists, not tuples)."""
    again = runs.run(base_cfg, allow_train=True, force=True, progress=False)
    assert _numbers(again) == _numbers(base_result)
    monkeypatch.setattr(lib.train, "train", _no_training)
    assert runs.run(base_cfg, allow_train=False) == again


def test_cache_hit_does_not_train(base_cfg, base_result, monkeypatch):
    monkeypatch.setattr(lib.train, "train", _no_training)
    stored = json.loads(runs.result_path(base_cfg).read_text())
    assert runs.run(base_cfg, allow_train=False) == stored
    assert runs.run(base_cfg.replace(label="another label", profile="custom")) == stored


def test_corrupt_result_is_detected_and_redone(base_cfg, base_result, monkeypatch):
    path = runs.result_path(base_cfg)
    text = path.read_text()
    for broken in (text[: len(text) // 2], "", json.dumps({**base_result, "curve": []}),
                   json.dumps({k: v for k, v in base_result.items() if k != "meta"}),
                   json.dumps({**base_result, "config": base_cfg.replace(seed=99).to_dict()})):
        path.write_text(broken)
        assert runs.load_cached(base_cfg) is None
    path.write_text(text[: len(text) // 3])
    calls = []
    real_train = lib.train.train
    monkeypatch.setattr(lib.train, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    redone = runs.run(base_cfg, allow_train=True, progress=False)
    assert calls == [1]
    assert _numbers(redone) == _numbers(base_result)
    assert runs.load_cached(base_cfg) == _json(redone)


# --- sweeps and the missing-run message ------------------------------------------------------

def test_missing_runs_are_reported_not_trained(base_cfg, base_result, monkeypatch):
    missing = base_cfg.replace(seed=4242)
    monkeypatch.setattr(lib.train, "train", _no_training)
    monkeypatch.delenv("REPEAT_ALLOW_TRAIN", raising=False)
    with pytest.raises(runs.MissingRunsError) as info:
        runs.run_sweep([base_cfg, missing], allow_train=False)
    message = str(info.value)
    assert missing.key() in message and base_cfg.key() not in message
    assert "1 run(s)" in message and "python -m lib." in message and "--profile smoke" in message
    with pytest.raises(runs.MissingRunsError):
        runs.run(missing)  # REPEAT_ALLOW_TRAIN unset: no training by default
    assert not runs.result_path(missing).exists()


def test_run_sweep_table(base_cfg, base_result):
    seed1 = base_cfg.replace(seed=1)
    table = runs.run_sweep([base_cfg, seed1], allow_train=True, progress=False)
    assert isinstance(table, pd.DataFrame) and len(table) == 2
    assert table["key"].tolist() == [base_cfg.key(), seed1.key()]
    assert table["seed"].tolist() == [0, 1]
    assert table["epochs"].tolist() == [4, 4] and table["unique_tokens"].tolist() == [2**12] * 2
    assert table["val_loss"].iloc[0] == base_result["final"]["val_loss"]
    assert table["val_loss"].iloc[1] != table["val_loss"].iloc[0]  # another seed, other numbers
    assert table["params"].iloc[0] == base_result["meta"]["params"]
    long = runs.curves([base_cfg, seed1])
    assert len(long) == 2 * len(base_result["curve"])


# --- cache keys ------------------------------------------------------------------------------

def test_cache_keys(base_cfg):
    assert base_cfg.key() == RunConfig.from_dict(base_cfg.to_dict()).key()
    assert RunConfig.from_dict(base_cfg.to_dict()) == base_cfg
    assert RunConfig.from_dict(json.loads(json.dumps(base_cfg.to_dict()))) == base_cfg
    changed = [base_cfg.replace(seed=1), base_cfg.replace(optim__lr=1e-3),
               base_cfg.replace(data__unique_tokens=2**13), base_cfg.replace(data__corpus="wikipedia"),
               base_cfg.replace(data__epochs=2), base_cfg.replace(model__dropout=0.1)]
    keys = {c.key() for c in changed}
    assert len(keys) == len(changed) and base_cfg.key() not in keys
    assert base_cfg.replace(label="renamed").key() == base_cfg.key()
    assert base_cfg.replace(profile="cpu").key() == base_cfg.key()


# --- command lines ---------------------------------------------------------------------------

def test_python_m_lib_run_smoke(cache_dir, store):
    out = subprocess.run([sys.executable, "-m", "lib.run", "--profile", "smoke"], cwd=repo_root(),
                         capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "result:" in out.stdout and "final val loss" in out.stdout
    path = Path(out.stdout.split("result:")[1].split()[0])
    assert path.parent == cache_dir.resolve() / "runs" and path.exists()
    assert runs.load_cached(RunConfig.from_dict(json.loads(path.read_text())["config"])) is not None


# --- resuming --------------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def test_resume_after_interruption_is_exact(base_cfg, base_result, tmp_path, monkeypatch):
    """Interrupted right after its first checkpoint, a run resumed from it ends exactly like an
    uninterrupted one: the same curve and final metrics."""
    real_save = lib.train._save_checkpoint
    saved = []

    def save_then_crash(accelerator, folder, state):
        real_save(accelerator, folder, state)
        saved.append(state["step"])
        raise Interrupted

    ckpt = tmp_path / "ckpt"
    monkeypatch.setattr(lib.train, "_save_checkpoint", save_then_crash)
    with pytest.raises(Interrupted):
        lib.train.train(base_cfg, checkpoint_dir=ckpt, progress=False)
    assert saved == [base_cfg.steps // 4]
    assert json.loads((ckpt / "progress.json").read_text())["step"] == saved[0]
    monkeypatch.setattr(lib.train, "_save_checkpoint", real_save)
    resumed = lib.train.train(base_cfg, checkpoint_dir=ckpt, progress=False).to_dict()
    assert [p["step"] for p in resumed["curve"]] == [p["step"] for p in base_result["curve"]]
    assert _numbers(resumed) == _numbers(base_result)
    assert not ckpt.exists()


# --- atomic writes and failures --------------------------------------------------------------

def test_write_atomic(tmp_path):
    path = tmp_path / "result.json"
    runs.write_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    runs.write_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    with pytest.raises(TypeError):
        runs.write_atomic(path, {"a": 3, "b": [1, 2, object()]})  # json.dump fails midway
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary files left


def test_failed_run_leaves_no_files(smoke, cache_dir):
    """A run that fails (U larger than the corpus) adds nothing to runs/: no result, no lock."""
    cfg = smoke.config("S", unique_tokens=2**30, seed=7)
    folder = cache_dir / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    with pytest.raises(ValueError, match="exceeds"):
        runs.run(cfg, allow_train=True, progress=False)
    assert set(folder.iterdir()) == before
