"""Corpora, tokenizer, token store, nested subsets, repetition and input validation."""
from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from lib import corpora, fixture, runs
from lib.config import DataConfig
from lib.objectives import raw_length_for_inputs
from lib.paths import cache_root, repo_root
from lib.profiles import get_profile
from lib.subsets import RepeatedSubset, training_document_order, unique_chunks
from lib.tokenizer import EOS_ID


# --- corpora -------------------------------------------------------------------------------

def test_unknown_corpus_names_the_options():
    with pytest.raises(ValueError, match="unknown corpus 'nope'") as info:
        corpora.load_corpus("nope")
    for name in ("web", "wikipedia", "c4", "wikipedia-hub"):
        assert repr(name) in str(info.value)


BAD_CORPORA = {  # what is wrong -> (REPEAT_CORPORA under tmp_path, files in it, a phrase of the message)
    "no such folder": ("nowhere", {}, "does not exist"),
    "no corpus folder": ("", {"wikipedia/a.jsonl": b'{"text": "a"}\n'}, "no corpus 'web'"),
    "no shards": ("", {"web/notes.txt": b"x"}, "no shards in"),
    "not gzip": ("", {"web/a.jsonl.gz": b'{"text": "a"}\n'}, "not in the shard format"),
    "not JSON": ("", {"web/a.jsonl": b"plain text\n"}, "not in the shard format"),
    "no text field": ("", {"web/a.jsonl.gz": gzip.compress(b'{"body": "a"}\n')}, "not in the shard format"),
}


@pytest.mark.parametrize("case", BAD_CORPORA)
def test_bad_corpora_say_what_was_expected_and_where(case, tmp_path, monkeypatch):
    folder, files, phrase = BAD_CORPORA[case]
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    monkeypatch.setenv("REPEAT_CORPORA", str(tmp_path / folder))
    with pytest.raises(corpora.CorpusError) as info:
        corpora.load_corpus("web", max_docs=10)
    message = str(info.value)
    assert "\n" not in message and phrase in message and "expected" in message
    assert str(tmp_path / folder / "web") in message


def test_a_run_on_bad_corpora_writes_nothing(smoke, tmp_path, monkeypatch):
    monkeypatch.setenv("REPEAT_CORPORA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(corpora.CorpusError, match="does not exist"):
        runs.run(smoke.config("XS"), allow_train=True, progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_local_folder_of_a_hub_corpus_is_read_locally(tmp_path, monkeypatch):
    corpora.write_shard(_mkdir(tmp_path / "c4") / "train-00000.jsonl.gz",
                        [{"text": f"c4 document {i}", "source": "test"} for i in range(5)])
    monkeypatch.setenv("REPEAT_CORPORA", str(tmp_path))
    corpus = corpora.load_corpus("c4", max_docs=3)
    assert corpus.source == f"local:{tmp_path / 'c4'}"
    assert corpus.documents["text"] == ["c4 document 0", "c4 document 1", "c4 document 2"]


def _mkdir(path):
    path.mkdir(parents=True)
    return path


def test_corpora_import_without_datasets():
    """A machine without `datasets` (one that reads pre-tokenized packs) can import the data modules."""
    code = "import sys; sys.modules['datasets'] = None; import lib.corpora, lib.tokens, lib.tokenizer"
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    blocked = subprocess.run([sys.executable, "-c", code + "; lib.corpora.take_documents([], 1)"],
                             cwd=repo_root(), capture_output=True, text=True)
    assert "ModuleNotFoundError" in blocked.stderr  # the block works: reading documents needs datasets


# --- the fixture corpus --------------------------------------------------------------------------

def test_fixture_holds_only_redistributable_text():
    """web/ is C4 only (no blog post: their licence is non-commercial research only); under 5 MB."""
    root = corpora.fixture_root()
    web = list(corpora.read_rows(corpora.local_shards("web", root)))
    wiki = list(corpora.read_rows(corpora.local_shards("wikipedia", root)))
    assert all(row["source"].startswith(fixture.C4_SOURCES) for row in web)
    assert all(row["source"].startswith("jason-feng/wikiVisual@") for row in wiki)
    assert len(web) == 2480 and len(wiki) >= 300
    assert sum(p.stat().st_size for p in root.rglob("*.jsonl.gz")) < 5_000_000


def test_fixture_cut_is_reproducible(tmp_path):
    """The cut keeps C4 rows and a prefix of wikipedia, and the same corpora give the same bytes."""
    web = [{"text": f"post {i}", "source": "muhwagua/color-bert@406f4e9:x.xml"} if i % 3 else
           {"text": f"c4 {i}", "source": fixture.C4_SOURCES[i % 2] + "abc:data.jsonl"} for i in range(30)]
    wiki = [{"text": "x" * 3_000_000, "source": f"jason-feng/wikiVisual@1c0fac9:text/{i}"} for i in range(5)]
    for name, rows in (("web", web), ("wikipedia", wiki)):
        corpora.write_shard(_mkdir(tmp_path / "full" / name) / "train-00000.jsonl.gz", rows)
    counts = [fixture.cut(tmp_path / "full", tmp_path / out) for out in ("a", "b")]
    assert counts[0] == counts[1] == {"web": 10, "wikipedia": 3}  # 3 x 3M characters crosses 8M
    for shard in (tmp_path / "a").rglob("*.jsonl.gz"):
        assert shard.read_bytes() == (tmp_path / "b" / shard.relative_to(tmp_path / "a")).read_bytes()
    kept = list(corpora.read_rows(sorted((tmp_path / "a" / "web").glob("*.jsonl.gz"))))
    assert kept == [row for row in web if not row["source"].startswith("muhwagua")]


def test_take_documents_on_a_streaming_json_dataset(tmp_path):
    """The Hub code path's helper, on a local streaming dataset: the first n documents, in order."""
    import datasets

    texts = [f"document number {i}" for i in range(7)]
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": i, "text": text}) + "\n")
    stream = datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)
    docs = corpora.take_documents(stream, 3)
    assert isinstance(docs, datasets.Dataset)
    assert docs.column_names == ["text"] and docs["text"] == texts[:3]
    assert corpora.take_documents(stream, 100)["text"] == texts  # fewer documents than asked


def test_hub_corpus_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        corpora.load_corpus("c4", max_docs=10)
    assert time.perf_counter() - start < 10  # no hanging on the network
    message = str(info.value)
    assert "allenai/c4" in message and "local corpus" in message and "REPEAT_CORPORA" in message


def test_local_corpus_prefix_and_fingerprint():
    a = corpora.load_corpus("web", max_docs=50)
    b = corpora.load_corpus("web", max_docs=60)
    assert len(a.documents) == 50 and b.documents["text"][:50] == a.documents["text"]
    assert a.fingerprint != b.fingerprint  # a different document set, a different fingerprint
    assert corpora.load_corpus("web", max_docs=50).fingerprint == a.fingerprint


# --- tokenizer -----------------------------------------------------------------------------

def test_tokenizer_is_cached_under_the_cache_dir(store, cache_dir):
    assert cache_root() == cache_dir.resolve()
    assert store.tokenizer.folder.parent == cache_dir.resolve() / "tokenizers"
    assert (store.tokenizer.folder / "spiece.model").exists()
    assert store.folder.parent == cache_dir.resolve() / "tokens"


def test_hf_tokenizer_agrees_with_sentencepiece(store):
    tok = store.tokenizer
    hf = tok.hf_tokenizer()
    sp = tok.processor()
    assert sp.get_piece_size() == tok.vocab_size == 512
    for sentence in ("The quick brown fox jumps over the lazy dog.",
                     "In 1905, Einstein published four papers; one was on relativity!"):
        assert hf(sentence).input_ids == sp.encode(sentence) + [EOS_ID]
    assert len(hf) == tok.total_vocab
    assert hf.convert_tokens_to_ids("<extra_id_0>") == tok.total_vocab - 1 == tok.sentinel(0)
    assert hf.convert_tokens_to_ids("<extra_id_99>") == tok.total_vocab - 100 == tok.sentinel(99)
    assert (hf.pad_token_id, hf.eos_token_id, hf.unk_token_id) == (0, 1, 2)


# --- token store ---------------------------------------------------------------------------

def test_store_layout(store):
    """Every document ends with EOS, offsets cover the token array, some documents are held out."""
    assert store.offsets[0] == 0 and store.offsets[-1] == len(store.tokens)
    assert np.all(store.tokens[store.offsets[1:] - 1] == EOS_ID)
    assert len(store.is_validation) == len(store.offsets) - 1 == 2480  # the fixture's web/ (max_docs 3000)
    assert 0 < store.is_validation.sum() < 0.05 * len(store.is_validation)


def test_validation_flags_are_the_text_hash(store):
    docs = corpora.load_corpus("web", max_docs=3000).documents["text"]
    assert store.is_validation.tolist() == [corpora.is_validation(t) for t in docs]


def test_validation_documents_never_train(base_cfg, store, smoke):
    """No held-out document is in the training order, nor (as tokens) in the largest subset."""
    order = training_document_order(store, base_cfg.data.subset_seed)
    assert not store.is_validation[order].any()
    assert sorted(order.tolist()) == store.document_ids(validation=False).tolist()
    largest = dataclasses.replace(base_cfg.data, unique_tokens=smoke.total_tokens, epochs=1)
    stream = unique_chunks(largest, store).astype(store.tokens.dtype).tobytes()
    checked = 0
    for doc in store.document_ids(validation=True):
        ids = store.tokens[store.offsets[doc]:store.offsets[doc + 1]]
        if len(ids) >= 20:
            found = stream.find(ids[:-1].tobytes())
            assert found == -1 or found % ids.itemsize, f"validation doc {doc} is in the training chunks"
            checked += 1
    assert checked >= 5


# --- subsets -------------------------------------------------------------------------------

def test_subsets_are_nested(base_cfg, store):
    """Smaller unique subsets are exactly the first chunks of larger ones."""
    sizes = [2**14 // 256, 2**14 // 4, 2**14]
    chunks = [unique_chunks(dataclasses.replace(base_cfg.data, unique_tokens=u), store) for u in sizes]
    raw_length = raw_length_for_inputs(64, 0.15, 3.0)[0]
    for u, c in zip(sizes, chunks):
        assert c.shape == (u // 64, raw_length)
    for small, large in zip(chunks, chunks[1:]):
        assert np.array_equal(small, large[:len(small)])


def test_each_chunk_repeats_exactly_epochs_times(base_cfg, store):
    data = RepeatedSubset(base_cfg.data, store, base_cfg.optim.batch_size, seed=0)
    n = len(data.chunks)
    assert n == base_cfg.data.unique_tokens // base_cfg.data.input_length == 64
    drawn = np.concatenate([data.chunk_indices(s) for s in range(base_cfg.steps)])
    assert len(drawn) == 4 * n
    assert Counter(drawn.tolist()) == {i: 4 for i in range(n)}
    epochs = drawn.reshape(4, n)
    for order in epochs:
        assert sorted(order.tolist()) == list(range(n))
    assert len({tuple(o) for o in epochs.tolist()}) == 4  # a fresh order every epoch


def test_batches_depend_on_seed_and_step_and_split_over_ranks(base_cfg, store):
    a = RepeatedSubset(base_cfg.data, store, 8, seed=0)
    b = RepeatedSubset(base_cfg.data, store, 8, seed=0)
    for step in (0, 9, 31):
        x, y = a.batch(step)
        x2, y2 = b.batch(step)
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
        (x0, y0), (x1, y1) = a.batch(step, 0, 2), a.batch(step, 1, 2)
        assert x0.shape == (4, 64)
        assert np.array_equal(np.stack([x0, x1], 1).reshape(x.shape), x)
        assert np.array_equal(np.stack([y0, y1], 1).reshape(y.shape), y)
    assert not np.array_equal(a.batch(0)[0], a.batch(1)[0])
    assert not np.array_equal(a.batch(0)[0], RepeatedSubset(base_cfg.data, store, 8, seed=1).batch(0)[0])
    # the same chunk drawn in two epochs gets two different noise masks
    step_of = {}
    for step in range(base_cfg.steps):
        for row, chunk in enumerate(a.chunk_indices(step)):
            step_of.setdefault(int(chunk), []).append((step, row))
    (s1, r1), (s2, r2) = step_of[0][:2]
    assert not np.array_equal(a.batch(s1)[0][r1], a.batch(s2)[0][r2])


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("epochs", [2.5, 0, True, -1])
def test_bad_epochs(epochs):
    with pytest.raises(ValueError, match="epochs"):
        DataConfig(epochs=epochs)


def test_unique_tokens_larger_than_corpus(smoke, cache_dir):
    cfg = smoke.config("XS", unique_tokens=2**30)
    with pytest.raises(ValueError, match=r"exceeds the [\d,]+ encoder-input tokens") as info:
        runs.run(cfg, allow_train=True, progress=False)
    assert "unique_tokens <=" in str(info.value) and "max_docs=3000" in str(info.value)
    assert not runs.result_path(cfg).exists()
    assert not list((cache_dir / "runs").glob(f"{cfg.key()}*.json"))


def test_unknown_profile_lists_profiles():
    with pytest.raises(ValueError, match="unknown profile 'huge'") as info:
        get_profile("huge")
    for name in ("smoke", "cpu", "gpu", "paper"):
        assert name in str(info.value)


def test_unknown_size_lists_sizes(smoke):
    with pytest.raises(ValueError, match=r"\['XS', 'S', 'M'\]"):
        smoke.config("XXL")


def test_budget_must_split_into_steps(smoke):
    with pytest.raises(ValueError, match="multiple of one step"):
        smoke.config("XS", unique_tokens=64 * 3)
    with pytest.raises(ValueError, match="unique_tokens"):
        DataConfig(unique_tokens=100)
