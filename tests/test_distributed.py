"""Two CPU processes under torchrun give the same run as one process (data split by rank)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib.paths import repo_root

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to python")
def test_two_processes_match_one(base_cfg, base_result, cache_dir, tmp_path):
    """`torchrun --nproc_per_node 2 -m lib.train` on a global batch of 8 matches the one-process
    run of the same config: world size recorded, and every validation loss within 1e-4."""
    assert base_cfg.optim.batch_size == 8
    cache = tmp_path / "cache"
    for part in ("tokenizers", "tokens"):  # reuse the session's tokenizer and token stores
        shutil.copytree(cache_dir / part, cache / part)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(base_cfg.to_dict()))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["REPEAT_CACHE_DIR"] = str(cache)
    out = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "lib.train",
                          "--config", str(config)], cwd=repo_root(), env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.count("result:") == 1  # printed by rank 0 only
    path = cache / "runs" / f"{base_cfg.key()}.json"
    two = json.loads(path.read_text())
    one = base_result
    assert two["meta"]["world_size"] == 2 and one["meta"]["world_size"] == 1
    # the copied tokenizer and stores were used: no new ones were built
    for part in ("tokenizers", "tokens"):
        assert sorted(os.listdir(cache / part)) == sorted(os.listdir(cache_dir / part))
    assert [p["step"] for p in two["curve"]] == [p["step"] for p in one["curve"]]
    assert two["final"]["val_loss"] == pytest.approx(one["final"]["val_loss"], rel=1e-4)
    for a, b in zip(two["curve"], one["curve"]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        if b["train_loss"] is not None:
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
