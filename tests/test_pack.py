"""Token packs (lib.pack): a smoke pack built from the fixture corpus gives the corpus path's arrays
and runs bit for bit, is checked by digest and data identity, and trains without the corpora or
`datasets`."""
from __future__ import annotations

import dataclasses
import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib import pack, runs
from lib.pack import PackError, PackStore, data_source
from lib.paths import repo_root
from lib.subsets import RepeatedSubset, available_unique_tokens, unique_chunks, validation_set
from lib.tokens import token_store

REBUILD = "python -m lib.pack build --profile smoke --out"


@pytest.fixture(scope="module")
def smoke_pack(store, tmp_path_factory) -> Path:
    """`python -m lib.pack build --profile smoke` (which also checks the pack), from the session's
    tokenizer and token stores of the fixture corpus."""
    folder = tmp_path_factory.mktemp("pack") / "smoke"
    done = subprocess.run([sys.executable, "-m", "lib.pack", "build", "--profile", "smoke", "--out", str(folder)],
                          cwd=repo_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
    return folder


@pytest.fixture
def copied_pack(smoke_pack, tmp_path) -> Path:
    """A private copy of the smoke pack, to damage (a pack is read once per process and folder)."""
    return Path(shutil.copytree(smoke_pack, tmp_path / "pack"))


@pytest.fixture
def pack_only(smoke_pack, tmp_path, monkeypatch) -> Path:
    """REPEAT_PACK set, an empty run cache and no corpora: whatever runs reads the pack."""
    monkeypatch.setenv("REPEAT_PACK", str(smoke_pack))
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REPEAT_CORPORA", str(tmp_path / "no corpora here"))
    return smoke_pack


def _numbers(result: dict) -> dict:
    return json.loads(json.dumps({k: result[k] for k in ("curve", "final", "reference")}))


def test_pack_gives_the_corpus_arrays(base_cfg, store, smoke_pack, monkeypatch):
    """Subsets, every step's batch (span and UL2) and the validation sets of both corpora are the
    corpus path's arrays exactly."""
    monkeypatch.setenv("REPEAT_PACK", str(smoke_pack))
    packed = data_source(base_cfg.data)
    assert isinstance(packed, PackStore) and packed.fingerprint == store.fingerprint
    one_epoch = dataclasses.replace(base_cfg.data, unique_tokens=base_cfg.data.total_tokens, epochs=1)
    for data in (base_cfg.data, one_epoch):
        np.testing.assert_array_equal(unique_chunks(data, packed), unique_chunks(data, store))
    for data in (base_cfg.data, dataclasses.replace(base_cfg.data, objective="ul2")):
        from_pack, from_corpus = (RepeatedSubset(data, s, base_cfg.optim.batch_size, base_cfg.seed)
                                  for s in (packed, store))
        for step in range(base_cfg.steps):
            for a, b in zip(from_pack.batch(step), from_corpus.batch(step)):
                np.testing.assert_array_equal(a, b)
    for corpus in base_cfg.data.tokenizer_corpora:
        data = dataclasses.replace(base_cfg.data, corpus=corpus)
        for a, b in zip(validation_set(data, data_source(data), base_cfg.eval_sequences),
                        validation_set(data, token_store(data), base_cfg.eval_sequences)):
            np.testing.assert_array_equal(a, b)


def test_run_with_other_data_settings_is_refused(base_cfg, pack_only):
    for other in (base_cfg.replace(data__vocab_size=256), base_cfg.replace(data__max_docs=100)):
        with pytest.raises(PackError, match="built for other data settings") as error:
            runs.run(other, allow_train=True, progress=False)
        assert f"{REBUILD} {pack_only}" in str(error.value)
    assert not runs.runs_dir().exists() or not list(runs.runs_dir().glob("*.json"))


def _replace_stream(path: Path) -> None:
    """A valid xz file of other tokens."""
    tokens = np.frombuffer(lzma.decompress(path.read_bytes()), dtype=np.uint16).copy()
    tokens[0] += 1
    path.write_bytes(lzma.compress(tokens.tobytes()))


def _edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "pack.json").read_text())
    change(manifest)
    (folder / "pack.json").write_text(json.dumps(manifest))


DAMAGE = {
    "garbled training stream": (lambda f: (f / "web.train.u16.xz").write_bytes(b"not xz"), "missing or corrupt"),
    "other validation tokens": (lambda f: _replace_stream(f / "web.val.u16.xz"), "does not match its digest"),
    "missing stream": (lambda f: (f / "web.train.u16.xz").unlink(), "missing or corrupt"),
    "other tokenizer": (lambda f: [p.write_bytes(p.read_bytes() + b"\0") for p in f.glob("*/spiece.model")],
                        "not the one the pack was built with"),
    "no tokenizer": (lambda f: [shutil.rmtree(p.parent) for p in f.glob("*/spiece.model")], "has no tokenizer"),
    "another format": (lambda f: _edit_manifest(f, lambda m: m.update(format=99)), "has format 99"),
    "other identity": (lambda f: _edit_manifest(f, lambda m: m["identity"].update(subset_seed=5)),
                       "built for other data settings"),
    "other digest": (lambda f: _edit_manifest(f, lambda m: m["corpora"]["web"]["train"].update(sha256="0" * 64)),
                     "does not match its digest"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_pack_names_what_to_rebuild(base_cfg, copied_pack, monkeypatch, damage):
    spoil, message = DAMAGE[damage]
    spoil(copied_pack)
    monkeypatch.setenv("REPEAT_PACK", str(copied_pack))
    with pytest.raises(PackError, match=message) as error:
        data_source(base_cfg.data)
    assert f"{REBUILD} {copied_pack}" in str(error.value)
    with pytest.raises(SystemExit, match=f"pack: .*{message}"):
        pack.main(["check", "--profile", "smoke", "--out", str(copied_pack)])


def test_unreadable_manifest_names_the_folder(base_cfg, copied_pack, monkeypatch):
    text = (copied_pack / "pack.json").read_text()
    (copied_pack / "pack.json").write_text(text[: len(text) // 2])
    monkeypatch.setenv("REPEAT_PACK", str(copied_pack))
    with pytest.raises(PackError, match="no readable token pack") as error:
        data_source(base_cfg.data)
    assert str(copied_pack) in str(error.value) and "python -m lib.pack build" in str(error.value)


def test_run_larger_than_the_pack_says_the_pack_is_too_small(base_cfg, store, pack_only):
    larger = base_cfg.replace(data__unique_tokens=4 * base_cfg.data.total_tokens, data__epochs=1)
    assert larger.data.unique_tokens <= available_unique_tokens(larger.data, store)  # the corpus holds them
    with pytest.raises(PackError, match="build the pack for a profile whose budget covers"):
        runs.run(larger, allow_train=True, progress=False)


NO_DATASETS = """
import json, sys
sys.modules["datasets"] = None  # `import datasets` fails from here on
import lib.pack, lib.train, lib.runs
from lib.config import RunConfig
try:
    import datasets
    sys.exit("datasets imported")
except ImportError:
    pass
cfg = RunConfig.from_dict(json.loads(sys.argv[1]))
lib.runs.run(cfg, allow_train=True, progress=False)
"""


def test_trains_from_the_pack_without_datasets_or_corpora(base_cfg, base_result, smoke_pack, tmp_path):
    """`runs.run` in a process where `import datasets` fails, with no corpora, trains the smoke config
    from the pack to the corpus run's numbers bit for bit, cached under the same key."""
    env = {**os.environ, "REPEAT_PACK": str(smoke_pack), "REPEAT_CACHE_DIR": str(tmp_path / "cache"),
           "REPEAT_CORPORA": str(tmp_path / "nowhere")}
    done = subprocess.run([sys.executable, "-c", NO_DATASETS, json.dumps(base_cfg.to_dict())], cwd=repo_root(),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "cache" / "runs" / f"{base_cfg.key()}.json").read_text())
    assert _numbers(result) == _numbers(base_result)
    assert result["final"]["val_loss"] == base_result["final"]["val_loss"]
