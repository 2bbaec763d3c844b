"""`python -m lib.corpora prepare`: the Hub's `datasets` code path, run on local files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lib import corpora
from lib.paths import repo_root


@pytest.fixture
def sources(tmp_path):
    """Two local datasets in the shapes of the Hub's: C4 rows (text, url) and Wikipedia (title, text)."""
    c4, wiki = tmp_path / "c4.jsonl", tmp_path / "wiki.json"
    c4.write_text("".join(json.dumps({"text": f"web page {i}", "url": f"https://example.org/{i}",
                                      "timestamp": "2019"}) + "\n" for i in range(23)))
    wiki.write_text("".join(json.dumps({"id": str(i), "title": f"Article {i}", "text": f"Article {i} is a topic.",
                                        "url": f"https://en.wikipedia.org/wiki?curid={i}"}) + "\n" for i in range(9)))
    return {"c4": corpora.DatasetSource("json", data_files=(str(c4),)),
            "wikipedia-hub": corpora.DatasetSource("json", data_files=(str(wiki),))}


def _shards(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_writes_shards_that_load_as_corpora(sources, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert corpora.prepare(out, docs=20, sources=sources, docs_per_shard=8, progress=False) == \
        {"c4": 20, "wikipedia-hub": 9}
    assert sorted(_shards(out)) == ["c4/train-00000.jsonl.gz", "c4/train-00001.jsonl.gz", "c4/train-00002.jsonl.gz",
                                    "wikipedia-hub/train-00000.jsonl.gz", "wikipedia-hub/train-00001.jsonl.gz"]
    rows = list(corpora.read_rows(sorted((out / "c4").glob("*.jsonl.gz"))))
    assert rows[0] == {"text": "web page 0", "source": "json:https://example.org/0"}
    assert [r["text"] for r in rows] == [f"web page {i}" for i in range(20)]  # the first 20, in order
    monkeypatch.setenv("REPEAT_CORPORA", str(out))
    wiki = corpora.load_corpus("wikipedia-hub")
    assert wiki.source.startswith("local:") and len(wiki.documents) == 9
    assert wiki.documents["text"][3] == "Article 3\n\nArticle 3 is a topic."  # title first, as in `wikipedia`


def test_interrupted_prepare_resumes_to_the_same_bytes(sources, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    corpora.prepare(whole, docs=20, sources=sources, docs_per_shard=8, progress=False)
    write_shard, calls = corpora.write_shard, []

    def interrupted(path, rows):
        calls.append(path)
        if len(calls) == 2:  # dies while writing the second shard
            path.with_name(path.name + ".partial").write_text("half a shard")
            raise KeyboardInterrupt
        write_shard(path, rows)

    out = tmp_path / "out"
    monkeypatch.setattr(corpora, "write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        corpora.prepare(out, docs=20, sources=sources, docs_per_shard=8, progress=False)
    monkeypatch.setattr(corpora, "write_shard", write_shard)
    assert sorted(_shards(out)) == ["c4/train-00000.jsonl.gz", "c4/train-00001.jsonl.gz.partial"]
    with pytest.raises(corpora.CorpusError, match="not empty.*--resume"):
        corpora.prepare(out, docs=20, sources=sources, docs_per_shard=8, progress=False)
    assert corpora.prepare(out, docs=20, resume=True, sources=sources, docs_per_shard=8, progress=False) == \
        {"c4": 20, "wikipedia-hub": 9}
    assert _shards(out) == _shards(whole)
    assert corpora.prepare(out, docs=20, resume=True, sources=sources, docs_per_shard=8, progress=False) == \
        {"c4": 20, "wikipedia-hub": 9}  # resuming a finished prepare writes nothing more
    assert _shards(out) == _shards(whole)


def test_prepare_offline_fails_at_once_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot reach the Hugging Face Hub for 'allenai/c4'"):
        corpora.prepare(tmp_path / "out", docs=10, progress=False)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists()


def test_prepare_command_offline_prints_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lib.corpora", "prepare", "--out", str(tmp_path / "out")],
                          cwd=repo_root(), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    assert done.stderr.startswith("prepare: cannot reach the Hugging Face Hub") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()

