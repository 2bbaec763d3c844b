"""The explorer's data path on a temporary cache holding two trained smoke runs (and variants of them)."""
from __future__ import annotations

import copy
import json

import pytest

from lib import explorer, paper, runs


@pytest.fixture(scope="module")
def second_result(base_cfg, base_result):
    """The base config with another seed, trained once."""
    return runs.run(base_cfg.replace(seed=1), allow_train=True, progress=False)


@pytest.fixture
def cache(tmp_path, monkeypatch, base_cfg, base_result, second_result):
    """A cache with only the two smoke runs (copied from the session cache) and a broken file."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for cfg in (base_cfg, base_cfg.replace(seed=1)):
        (folder / f"{cfg.key()}.json").write_text(runs.result_path(cfg).read_text())
    (folder / "broken.json").write_text('{"config": ')
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path))
    return folder


def _variant_of(result: dict, changes: dict) -> dict:
    """A copy of `result` whose config carries the given {(part, field): value}."""
    variant = copy.deepcopy(result)
    for (part, name), value in changes.items():
        variant["config"][part][name] = value
    return variant


def test_load_one_row_per_run(cache, base_cfg, base_result, second_result):
    table, curves = explorer.load()
    assert sorted(table.key) == sorted([base_cfg.key(), base_cfg.replace(seed=1).key()])  # broken file skipped
    row = table.set_index("seed").loc[0]
    assert (row["size"], row.corpus, row.unique_tokens, row.epochs, row.total_tokens) == (
        "XS", "web", 2**12, 4, 2**14)
    assert (row.objective, row.regularizer, row.variant) == ("span corruption", "none", "dense")
    assert row.val_loss == base_result["final"]["val_loss"]
    assert len(curves) == len(base_result["curve"]) + len(second_result["curve"])
    assert set(curves.run) == set(table.run)


def test_select_filters_and_summarises(cache, base_result, second_result):
    table, curves = explorer.load()
    chosen = explorer.select(table, curves, size="XS", epochs=4, unique_tokens=explorer.ALL, corpus="web")
    assert len(chosen.runs) == 2 and len(chosen.curves) == len(curves)
    assert chosen.summary.seeds.tolist() == [2]
    mean = (base_result["final"]["val_loss"] + second_result["final"]["val_loss"]) / 2
    assert chosen.summary.val_loss.iloc[0] == pytest.approx(mean)
    assert explorer.select(table, curves, epochs=1).runs.empty
    assert explorer.select(table, curves, size="M").curves.empty
    with pytest.raises(ValueError, match="unknown filter"):
        explorer.filter_runs(table, colour="red")


def test_variant_columns_read_new_fields_with_defaults(cache, base_result):
    late = _variant_of(base_result, {("model", "dropout"): 0.1, ("model", "dropout_start"): 0.5,
                                     ("optim", "label_smoothing"): 0.1, ("optim", "weight_decay"): 0.1})
    moe = _variant_of(base_result, {("model", "num_experts"): 16, ("model", "droppath"): 0.1,
                                    ("model", "num_layers"): 2, ("model", "num_decoder_layers"): 2,
                                    ("data", "objective"): "ul2"})
    shared = _variant_of(base_result, {("model", "layer_repeats"): 2, ("model", "dropout"): 0.1})
    old = copy.deepcopy(base_result)  # a result cached before the variant fields existed
    for part, names in (("data", ["objective"]), ("model", ["dropout_start", "droppath", "num_experts", "layer_repeats"]),
                        ("optim", ["label_smoothing"])):
        for name in names:
            old["config"][part].pop(name, None)
    for name, result in (("late", late), ("moe", moe), ("shared", shared), ("old", old)):
        (cache / f"{name}.json").write_text(json.dumps(result))
    table = explorer.load()[0].set_index("key")
    assert table.loc["late", "regularizer"] == "dropout 0.1 from 50% + label smoothing 0.1 + weight decay 0.1"
    assert (table.loc["moe", "variant"], table.loc["moe", "regularizer"], table.loc["moe", "objective"]) == (
        "MoE 16", "droppath 0.1", "UL2")
    assert (table.loc["shared", "variant"], table.loc["shared", "regularizer"]) == ("shared x2", "dropout 0.1")
    assert tuple(table.loc["old", ["objective", "regularizer", "variant"]]) == ("span corruption", "none", "dense")


def test_paper_number():
    dense = {"objective": "span corruption", "regularizer": "none", "variant": "dense"}
    row = explorer.paper_number({"corpus": "web", "epochs": 256, **dense})
    assert row["C4 Val Acc"].tolist() == paper.TABLE_1[paper.TABLE_1.epochs == 256]["C4 Val Acc"].tolist()
    assert len(explorer.paper_number({"corpus": "wikipedia", "epochs": explorer.ALL, **dense})) == len(paper.TABLE_2)
    assert explorer.paper_number({"corpus": "web", "epochs": 4, **dense}) is None  # the paper has no 4 epochs
    ul2 = explorer.paper_number({"corpus": "web", "epochs": 256, **dense, "objective": "UL2"})
    assert ul2.objective.tolist() == ["ul2"] and ul2.epochs.tolist() == [256]
    dropout = explorer.paper_number({"corpus": "web", "epochs": 256, **dense, "regularizer": "dropout 0.1"})
    assert dropout.regularizer.tolist() == ["dropout"]
    for other in ({"regularizer": "dropout 0.1 from 50%"}, {"regularizer": "dropout 0.1 + weight decay 0.1"},
                  {"variant": "MoE 16"}, {"corpus": "wikipedia", "objective": "UL2"}):
        assert explorer.paper_number({"corpus": "web", "epochs": 256, **dense, **other}) is None


def test_cascade_keeps_choices_consistent(cache):
    table, _ = explorer.load()
    offered, default = explorer.cascade(table, {})
    assert default["size"] == "XS" and default["epochs"] == explorer.ALL
    assert offered["epochs"] == [explorer.ALL, 4]
    _, fixed = explorer.cascade(table, {**default, "size": "L", "epochs": 256})
    assert fixed["size"] == "XS" and fixed["epochs"] == explorer.ALL  # unavailable choices fall back


def test_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(tmp_path))
    table, curves = explorer.load()
    assert table.empty and curves.empty
    assert explorer.select(table, curves).runs.empty
