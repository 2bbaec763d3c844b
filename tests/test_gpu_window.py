"""The GPU-window driver (lib.gpu_window) and its scripts: the plan's order, lanes and the deadline,
imports that refuse bad lane files and write nothing, and tools/gpu_sweep.sh and tools/gpu_check.sh
run end to end on the CPU from a smoke token pack (both at once: they mostly import torch)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib import gpu_window, pack, runs, sweeps
from lib.config import RunConfig
from lib.gpu_window import EPOCH_PRIORITY, ImportRefused
from lib.paths import repo_root
from lib.profiles import get_profile


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cached_files() -> list[Path]:
    return sorted(runs.runs_dir().glob("*.json")) if runs.runs_dir().exists() else []


@pytest.mark.parametrize("profile", ["smoke", "gpu"])
def test_plan_order(profile):
    """The 1-epoch ladder first (seed-major), then the grid by epochs 256, 16, 64, 4 (seed-major
    within each); every cell of findings 3.1 and 3.2 once."""
    seeds = (0, 1)
    cells = gpu_window.plan(profile, seeds)
    keys = [c.key() for c in cells]
    assert len(set(keys)) == len(keys)
    ladder = sweeps.tokens_vs_params(profile, seeds)
    assert keys[:len(ladder)] == [c.key() for c in ladder]
    assert [c.seed for c in ladder] == sorted(c.seed for c in ladder)
    assert [c.model.name for c in ladder[:len(get_profile(profile).ladder)]] == get_profile(profile).ladder
    rest = cells[len(ladder):]
    order = [(EPOCH_PRIORITY.index(c.data.epochs), c.seed) for c in rest]
    assert order == sorted(order) and rest[0].data.epochs == 256 and rest[-1].data.epochs == 4
    assert [e for e in dict.fromkeys(c.data.epochs for c in rest)] == [256, 16, 64, 4]
    assert set(keys) == {c.key() for c in ladder + sweeps.repetition_grid(profile, seeds)}


def _result(cfg: RunConfig) -> dict:
    """A complete result of this config, as JSON reads it back (what a lane file holds)."""
    return json.loads(json.dumps({"config": cfg.to_dict(), "curve": [{"step": cfg.steps, "val_loss": 5.0}],
                                  "final": {"val_loss": 5.0}, "reference": {"unigram_content_loss": 6.0},
                                  "meta": {"tokens_per_second": 1e3, "train_flops_per_second": 1e9}}))


def test_work_skips_cached_and_claimed_cells_and_stops_at_the_deadline(empty_cache, tmp_path, monkeypatch):
    """One lane: a cached cell is left alone, a cell another lane claimed is not trained here, the
    others train in plan order while they fit; after the deadline every cell is skipped."""
    cells = gpu_window.plan("smoke", (0,))
    runs.write_atomic(runs.result_path(cells[0]), _result(cells[0]))
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / cells[1].key()).touch()
    trained = []

    def fake_run(cfg, **kwargs):
        trained.append(cfg.key())
        return _result(cfg)

    monkeypatch.setattr(runs, "run", fake_run)
    out = tmp_path / "out"
    payload = gpu_window.work("smoke", (0,), time.time() + 3600, 0, out, claims)
    assert trained == [c.key() for c in cells[2:]]
    assert [e["key"] for e in payload["results"]] == trained and not payload["skipped"]
    assert json.loads((out / "lane0.json").read_text()) == json.loads(json.dumps(payload))
    assert sorted(p.name for p in claims.iterdir()) == sorted(c.key() for c in cells[1:])

    late = gpu_window.work("smoke", (1,), time.time(), 1, out, claims)
    assert not late["results"] and [s["key"] for s in late["skipped"]] == [c.key() for c in
                                                                           gpu_window.plan("smoke", (1,))]
    assert trained == [c.key() for c in cells[2:]]


def _lane(results: list[dict], keys: list[str] | None = None) -> dict:
    keys = keys or [RunConfig.from_dict(r["config"]).key() for r in results]
    return {"lane": 0, "profile": "smoke", "skipped": [],
            "results": [{"key": k, "seconds": 1.0, "result": r} for k, r in zip(keys, results)]}


def _write(path: Path, payload: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def _bad_lanes(result: dict) -> dict[str, tuple[dict | str, str]]:
    good = json.dumps(_lane([result]))
    other_cfg = RunConfig.from_dict(result["config"]).replace(seed=99)
    return {
        "truncated": (good[: len(good) // 2], "unreadable or truncated"),
        "key mismatch": (_lane([result], [other_cfg.key()]), "has config key"),
        "incomplete": (_lane([{k: v for k, v in result.items() if k != "meta"}]), "incomplete"),
        "no curve": (_lane([{**result, "curve": []}]), "incomplete"),
        "bad config": (_lane([{**result, "config": {"seed": 1}}], ["x"]), "no valid config"),
    }


@pytest.mark.parametrize("case", ["truncated", "key mismatch", "incomplete", "no curve", "bad config"])
def test_import_refuses_and_writes_nothing(base_cfg, empty_cache, tmp_path, case):
    """A good lane file beside a bad one: the import refuses (naming the file) and writes neither."""
    returned = tmp_path / "returned"
    _write(returned / "lane0.json", _lane([_result(base_cfg)]))
    bad, message = _bad_lanes(_result(base_cfg))[case]
    bad_file = _write(returned / "lane1.json", bad)
    with pytest.raises(ImportRefused, match=message) as error:
        gpu_window.import_results([returned])
    assert str(bad_file) in str(error.value)
    with pytest.raises(SystemExit, match="gpu_window import refused"):
        gpu_window.main(["import", str(returned)])
    assert _cached_files() == [] and runs.load_cached(base_cfg) is None


@pytest.mark.parametrize("payload", ['{"results": null}', '{"results": [null]}',
                                     '{"results": [{"key": "x", "result": null}]}'])
def test_import_refuses_malformed_lane_files(empty_cache, tmp_path, payload):
    with pytest.raises(ImportRefused):
        gpu_window.import_results([_write(tmp_path / "lane0.json", payload)])


def test_import_refuses_an_empty_folder(empty_cache, tmp_path):
    with pytest.raises(ImportRefused, match="no lane"):
        gpu_window.import_results([tmp_path])


def test_good_lane_file_imports(base_cfg, empty_cache, tmp_path):
    lane = _write(tmp_path / "returned" / "lane0.json", _lane([_result(base_cfg)]))
    assert gpu_window.import_results([lane]) == [base_cfg.key()]
    assert runs.load_cached(base_cfg) == _result(base_cfg)
    assert [p.stem for p in _cached_files()] == [base_cfg.key()]


# --- the scripts, on the CPU ---------------------------------------------------------------------

CHECK_TOKENS = 4096


@pytest.fixture(scope="module")
def scripts(store, tmp_path_factory):
    """tools/gpu_sweep.sh (SEEDS=0, LANES=1, a 40 s budget) and tools/gpu_check.sh (XS, 4,096 tokens)
    started side by side on a smoke pack, each with its own empty cache and no corpora."""
    root = tmp_path_factory.mktemp("scripts")
    pack.main(["build", "--profile", "smoke", "--out", str(root / "pack")])
    common = {**os.environ, "PROFILE": "smoke", "PYTHON": sys.executable, "REPEAT_PACK": str(root / "pack"),
              "REPEAT_CORPORA": str(root / "no corpora")}
    settings = {"gpu_sweep": {"SEEDS": "0", "LANES": "1", "BUDGET_S": "40"},
                "gpu_check": {"SIZE": "XS", "TOKENS": str(CHECK_TOKENS)}}
    started = {}
    for name, extra in settings.items():
        env = {**common, **extra, "OUT": str(root / name), "REPEAT_CACHE_DIR": str(root / f"{name}-cache")}
        started[name] = (subprocess.Popen(["bash", f"tools/{name}.sh"], cwd=repo_root(), env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True),
                         root / name)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output[-3000:]
    return output


def test_gpu_sweep_script_trains_in_plan_order_and_its_results_import(scripts, empty_cache):
    process, out = scripts["gpu_sweep"]
    assert "runs finished in" in _finish(process)
    lane = json.loads((out / "lane0.json").read_text())
    plan_keys = [c.key() for c in gpu_window.plan("smoke", (0,))]
    done, skipped = [e["key"] for e in lane["results"]], [s["key"] for s in lane["skipped"]]
    assert done and done[0] == plan_keys[0]
    assert done == [k for k in plan_keys if k not in skipped] and set(done + skipped) == set(plan_keys)
    gpu_window.main(["import", str(out)])
    for entry in lane["results"]:
        cached = runs.load_cached(RunConfig.from_dict(entry["result"]["config"]))
        assert cached == entry["result"] and cached["meta"]["corpus_fingerprint"]


def test_gpu_check_script_reports_two_equal_runs(scripts):
    process, out = scripts["gpu_check"]
    _finish(process)
    report = json.loads((out / "gpu_check.json").read_text())
    cfg = get_profile("smoke").config("XS", unique_tokens=CHECK_TOKENS, label="gpu check XS")
    assert set(report["runs"]) == {"plain", "accelerate"}
    for run in report["runs"].values():
        assert run["key"] == cfg.key() and run["world_size"] == 1
        assert all(run[k] is not None for k in gpu_window.REPORTED_FINAL)
        assert {"unigram_content_loss", "bigram_first_loss"} <= set(run)
    assert report["max_val_loss_difference"] == 0.0
    assert report["seconds"] > 0
