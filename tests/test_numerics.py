"""Pinned numerics (lib.numerics, `import lib`, RunConfig.threads/kernels): a process that cannot honour
the AVX2 pin refuses to train, the fields leave existing cache keys alone, and a run with the cpu
profile's version-2 numerics re-runs bit for bit against a committed reference.

The reference `tests/data/reference_run.json` is made by

    REPEAT_WRITE_REFERENCE=1 .venv/bin/python -m pytest -q tests/test_numerics.py -k reference

which trains `reference_config()` in a fresh process and writes its numbers with the CPU, libraries
and tokenizer it was made with (the test then skips). Remake it only when a change is meant to alter
the numbers (and bump ENGINE_VERSION with it).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib import PINNED_KERNEL_ENV
from lib.config import RunConfig
from lib.paths import repo_root
from lib.tokenizer import Tokenizer

REFERENCE = Path(__file__).parent / "data" / "reference_run.json"
COMMITTED_RUNS = repo_root() / "data_cache" / "runs"
NUMBERS = ("curve", "final", "reference")
META = ("cpu_model", "aten_capability", "mkl_cbwr", "threads", "versions", "python")


def _unpinned_env(**extra: str) -> dict:
    """This environment without the pin's variables (the test process has them from `import lib`)."""
    return {**{k: v for k, v in os.environ.items() if k not in PINNED_KERNEL_ENV}, **extra}


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=repo_root(), env=env, capture_output=True, text=True,
                          timeout=120)


CHECK = "from lib.numerics import check_kernels; check_kernels('avx2', torch.device('cpu')); print('pinned')"


def _assert_refused(done: subprocess.CompletedProcess) -> None:
    assert done.returncode != 0 and "pinned" not in done.stdout
    assert "RuntimeError: this run asks for pinned AVX2 kernels" in done.stderr
    assert "Import lib before torch" in done.stderr and "ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2" in done.stderr


@pytest.mark.parametrize("imports, env", [("import torch; import lib", {}), ("import lib, torch", {"MKL_CBWR": "AUTO"})],
                         ids=["torch before lib", "another MKL path"])
def test_kernel_check_refuses_an_unpinned_process(imports, env):
    _assert_refused(_python(f"{imports}; {CHECK}", _unpinned_env(**env)))


def test_training_refuses_another_capability(smoke, tmp_path):
    """`python -m lib.train` of a pinned config started with another ATen capability writes no result."""
    cfg = reference_config(smoke)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg.to_dict()))
    env = _unpinned_env(ATEN_CPU_CAPABILITY="default", REPEAT_CACHE_DIR=str(tmp_path / "cache"))
    _assert_refused(subprocess.run([sys.executable, "-m", "lib.train", "--config", str(config)], cwd=repo_root(),
                                   env=env, capture_output=True, text=True, timeout=120))
    assert not list(tmp_path.glob("cache/runs/*.json"))


def test_kernel_check_passes_when_lib_is_imported_first():
    done = _python(f"import lib, torch; {CHECK}; print(torch.backends.cpu.get_cpu_capability())", _unpinned_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["pinned", "AVX2"]


def test_kernel_check_ignores_default_kernels_and_rejects_unknown_ones(base_cfg):
    import torch

    from lib.numerics import check_kernels
    check_kernels("default", torch.device("cpu"))
    with pytest.raises(ValueError, match="kernels must be one of"):
        check_kernels("avx512", torch.device("cpu"))
    with pytest.raises(ValueError, match="kernels must be"):
        base_cfg.replace(kernels="avx512")


def test_committed_runs_keep_their_keys():
    """Every committed result rebuilds to its file's key (a field at its default is not keyed, so
    results written before a field existed keep theirs)."""
    files = sorted(COMMITTED_RUNS.glob("*.json"))
    configs = [json.loads(path.read_text())["config"] for path in files]
    assert files
    for path, config in zip(files, configs):
        cfg = RunConfig.from_dict(config)
        assert cfg.key() == path.stem
        assert RunConfig.from_dict(cfg.to_dict()).key() == path.stem


def test_set_numerics_change_the_key(base_cfg):
    keys = {base_cfg.key(), base_cfg.replace(threads=1).key(), base_cfg.replace(kernels="avx2").key(),
            base_cfg.replace(threads=1, kernels="avx2").key()}
    assert len(keys) == 4
    assert base_cfg.replace(threads=0, kernels="default").key() == base_cfg.key()


def reference_config(smoke) -> RunConfig:
    """Smoke XS, U = 2^12 tokens for 2 epochs (16 steps), with the cpu profile's version-2 numerics."""
    return smoke.config("XS", unique_tokens=2**12, epochs=2, label="numerics reference").replace(
        precision="fp32", compile=False, threads=1, kernels="avx2")


def _train_fresh(cfg: RunConfig, cache: Path, session_cache: Path) -> dict:
    """`python -m lib.train --config` in a fresh process (lib imported before torch, as the pin needs),
    into its own cache seeded with the session's tokenizer and token stores."""
    for part in ("tokenizers", "tokens"):
        shutil.copytree(session_cache / part, cache / part)
    config = cache / "cfg.json"
    config.write_text(json.dumps(cfg.to_dict()))
    done = subprocess.run([sys.executable, "-m", "lib.train", "--config", str(config)], cwd=repo_root(),
                          env={**os.environ, "REPEAT_CACHE_DIR": str(cache)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((cache / "runs" / f"{cfg.key()}.json").read_text())


def _vocabulary_digest(result: dict, cache: Path) -> str:
    """The tokenizer's pieces and scores (its file also holds the temporary path it was trained in)."""
    processor = Tokenizer(cache / "tokenizers" / result["meta"]["tokenizer"], 0).processor()
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    return hashlib.sha256(json.dumps(pieces).encode()).hexdigest()


def _differences(made: dict, now: dict, path: str = "") -> list[str]:
    """Where two JSON values differ, as 'path: made -> now'."""
    if isinstance(made, dict) and isinstance(now, dict):
        return [d for k in sorted(set(made) | set(now)) for d in _differences(made.get(k), now.get(k), f"{path}.{k}")]
    if isinstance(made, list) and isinstance(now, list) and len(made) == len(now):
        return [d for i, (a, b) in enumerate(zip(made, now)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if made == now else [f"{path}: {made!r} -> {now!r}"]


def test_reference_run_is_bitwise_reproduced(smoke, store, cache_dir, tmp_path):
    """The reference config trained now equals the committed reference bit for bit: every curve value,
    final metric and reference loss."""
    cfg = reference_config(smoke)
    result = _train_fresh(cfg, tmp_path / "cache", cache_dir)
    meta = {**{k: result["meta"][k] for k in META},
            "vocabulary_sha256": _vocabulary_digest(result, tmp_path / "cache")}
    assert meta["aten_capability"] == "AVX2" and meta["mkl_cbwr"] == "AVX2" and meta["threads"] == 1
    if os.environ.get("REPEAT_WRITE_REFERENCE"):
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps({"key": cfg.key(), "config": result["config"], "meta": meta,
                                         **{k: result[k] for k in NUMBERS}}, indent=1) + "\n")
        pytest.skip(f"wrote {REFERENCE}")
    made = json.loads(REFERENCE.read_text())
    assert made["key"] == cfg.key(), "the reference config changed: remake the reference (see the docstring)"
    assert made["meta"]["vocabulary_sha256"] == meta["vocabulary_sha256"], (
        "the smoke tokenizer trained from data/fixtures differs from the reference's: not a numerics change")
    differences = _differences({k: made[k] for k in NUMBERS}, {k: result[k] for k in NUMBERS})
    assert not differences, (
        f"{len(differences)} numbers differ from the reference made on {made['meta']['cpu_model']} "
        f"(torch {made['meta']['versions']['torch']}), re-run on {meta['cpu_model']} (torch "
        f"{meta['versions']['torch']}):\n" + "\n".join(differences[:10]))
