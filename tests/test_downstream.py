"""The downstream probe: SQuAD scoring, the title task, safetensors weights and fine-tuning."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from lib import downstream, finetune, runs, squad_score, title_task
from lib.models import build_model
from lib.objectives import IGNORE_INDEX
from lib.subsets import available_unique_tokens
from lib.tokenizer import EOS_ID, PAD_ID
from lib.weights import load_weights, save_weights, weights_path

# --- SQuAD scoring ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, normalized", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an  Apple, a day ", "apple day"),
    ("Theatre of the Absurd", "theatre of absurd"),  # articles go, words that start with them stay
    ("U.S.-Mexico", "usmexico"),
])
def test_normalize_answer_follows_squad(text, normalized):
    assert squad_score.normalize_answer(text) == normalized


def test_exact_match_and_f1_on_known_cases():
    assert squad_score.exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert squad_score.exact_match("Eiffel", "Eiffel Tower") == 0.0
    # 2 common tokens: precision 2/4, recall 2/2 -> F1 = 2 * 0.5 * 1 / 1.5
    assert squad_score.f1("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 / 3)
    assert squad_score.f1("Louvre", "Eiffel Tower") == 0.0
    assert squad_score.f1("tower tower", "tower") == pytest.approx(2 * 0.5 * 1 / 1.5)  # counts, not sets
    assert squad_score.f1("", "") == 1.0 and squad_score.f1("the", "Paris") == 0.0


def test_score_takes_the_best_reference_and_reports_percent():
    scores = squad_score.score(["Paris", "Lyon France"], [["London", "paris"], ["Lyon"]])
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="one non-empty reference list"):
        squad_score.score(["a"], [])


# --- the title task --------------------------------------------------------------------------

def test_parse_article_takes_title_and_first_real_paragraph():
    text = "Henry V (play)\n\nShort line.\nHenry V is a history play by William Shakespeare, written in 1599.\nMore."
    example = title_task.parse_article(text)
    assert example.title == "Henry V"
    assert example.lead.startswith("Henry V is a history play")
    assert title_task.parse_article("Stub\n\nToo short to be a lead.") is None


def test_lead_baseline_takes_the_words_before_the_verb():
    assert title_task.lead_baseline("Trip hop is a genre of electronic music") == "Trip hop"
    assert title_task.lead_baseline("Gary Numan (born 1958) was a singer") == "Gary Numan"


@pytest.fixture(scope="module")
def task(base_cfg):
    return title_task.build_task(base_cfg.data, 64, 16)


def test_task_examples_are_distinct_and_never_pretrained_on(task, base_cfg, smoke):
    assert len(task.train) == 64 and len(task.test) == 16
    assert not {e.lead for e in task.train} & {e.lead for e in task.test}
    wiki = dataclasses.replace(base_cfg.data, corpus="wikipedia", unique_tokens=smoke.total_tokens)
    title_task.check_unseen(task, wiki)  # the largest smoke subset stops well before the probe's articles
    store = title_task.token_store(wiki)
    everything = dataclasses.replace(wiki, unique_tokens=available_unique_tokens(wiki, store))
    assert title_task.pretraining_documents(everything, title_task.token_store(everything)) > task.first_document
    with pytest.raises(ValueError, match="overlaps the title task"):
        title_task.check_unseen(task, everything)


def test_encode_pads_and_ends_with_eos(task, base_cfg):
    inputs, targets = title_task.encode(task.test, base_cfg.data, input_length=32, target_length=6)
    assert inputs.shape == (16, 32) and targets.shape == (16, 6)
    for x, y in zip(inputs, targets):
        x_end, y_end = int((x != PAD_ID).sum()), int((y != IGNORE_INDEX).sum())
        assert x[x_end - 1] == EOS_ID and y[y_end - 1] == EOS_ID
        assert (x[x_end:] == PAD_ID).all() and (y[y_end:] == IGNORE_INDEX).all()
    short = [e for e, y in zip(task.test, targets) if y[-1] == IGNORE_INDEX]
    first = next(i for i, e in enumerate(task.test) if e in short)
    title_ids = targets[first][targets[first] != IGNORE_INDEX].tolist()
    tokenizer = title_task.token_store(base_cfg.data).tokenizer
    decoded = title_task.decode(title_ids + [PAD_ID], tokenizer.processor(), tokenizer.vocab_size)
    assert squad_score.normalize_answer(decoded) == \
        squad_score.normalize_answer(task.test[first].title)


# --- weights ---------------------------------------------------------------------------------

def test_weights_round_trip_through_safetensors(base_cfg, store, tmp_path):
    vocab = store.tokenizer.total_vocab
    model = build_model(base_cfg.model, vocab, seed=3)
    path = tmp_path / "w.safetensors"
    save_weights(model, path, "k")
    header_length = int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: u64 length, JSON header
    header = json.loads(path.read_bytes()[8:8 + header_length])
    assert header["__metadata__"]["run_key"] == "k" and "lm_head.weight" in header
    fresh = build_model(base_cfg.model, vocab, seed=4)
    load_weights(fresh, path)
    x = torch.randint(3, 100, (2, 16))
    model.eval(), fresh.eval()
    assert torch.equal(model(input_ids=x, labels=x).logits, fresh(input_ids=x, labels=x).logits)
    other = dataclasses.replace(base_cfg.model, d_model=48)
    with pytest.raises(RuntimeError):
        load_weights(build_model(other, vocab, seed=0), path)


def test_need_weights_retrains_a_cached_run_to_the_same_numbers(base_cfg, base_result):
    path = weights_path(base_cfg)
    assert path.exists()  # every run keeps its final weights
    path.unlink()
    assert runs.load_cached(base_cfg) is not None and runs.load_cached(base_cfg, need_weights=True) is None
    with pytest.raises(runs.MissingRunsError, match="with their weights"):
        runs.run(base_cfg, allow_train=False, need_weights=True)
    again = runs.run(base_cfg, allow_train=True, progress=False, need_weights=True)
    assert path.exists()
    assert again["curve"] == json.loads(json.dumps(base_result["curve"]))


# --- fine-tuning -----------------------------------------------------------------------------

def test_probe_keys(base_cfg):
    ft = finetune.finetune_config("smoke")
    other_cell = base_cfg.replace(data__unique_tokens=2**11, data__epochs=8)
    assert finetune.probe_key(base_cfg, ft, True) != finetune.probe_key(other_cell, ft, True)
    # the from-scratch floor depends on the architecture and seed, not on the pre-training data
    assert finetune.probe_key(base_cfg, ft, False) == finetune.probe_key(other_cell, ft, False)
    assert finetune.probe_key(base_cfg, ft, False) != finetune.probe_key(base_cfg.replace(seed=1), ft, False)
    assert finetune.probe_key(base_cfg, ft, True) != finetune.probe_key(base_cfg, dataclasses.replace(ft, lr=3e-4), True)
    with pytest.raises(ValueError, match="no fine-tuning budget"):
        finetune.finetune_config("laptop")


def test_probe_fine_tunes_scores_and_caches(base_cfg, base_result, monkeypatch):
    with pytest.raises(runs.MissingRunsError, match="downstream probe"):
        finetune.probe(base_cfg, allow_train=False)
    result = finetune.probe(base_cfg, allow_train=True, progress=False)
    ft = finetune.finetune_config("smoke")
    assert result["run_key"] == base_cfg.key() and result["pretrained"]
    assert 0 <= result["metrics"]["exact_match"] <= result["metrics"]["f1"] <= 100
    assert np.isfinite(result["metrics"]["test_loss"]) and len(result["examples"]) == ft.shown_examples
    monkeypatch.setattr(finetune, "_finetune_and_score", lambda *a, **k: pytest.fail("not from the cache"))
    assert finetune.probe(base_cfg, allow_train=False) == json.loads(json.dumps(result))


def test_probe_is_deterministic(base_cfg, base_result):
    ft = dataclasses.replace(finetune.finetune_config("smoke"), steps=4)
    first = finetune._finetune_and_score(base_cfg, ft, pretrained=False, progress=False)
    second = finetune._finetune_and_score(base_cfg, ft, pretrained=False, progress=False)
    assert first["metrics"] == second["metrics"] and first["examples"] == second["examples"]


# --- tables and verdicts (synthetic probe tables) --------------------------------------------

def _probe_rows(by: str, rises: dict[str, float], epochs=(1, 256), seeds=(0, 1), noise=0.01) -> pd.DataFrame:
    rows = []
    for group, change in rises.items():
        for e in epochs:
            for seed in seeds:
                loss = 5.0 + (change if e == max(epochs) else 0.0) + noise * (seed - 0.5)
                rows.append({"size": "S", "corpus": "web", "objective": "span", by: group, "epochs": e, "seed": seed,
                             "unique_tokens": 2**20 // e,
                             "exact_match": 10.0, "f1": 20.0, "test_loss": loss, "scratch_test_loss": 6.0})
    return pd.DataFrame(rows)


def test_downstream_verdicts_follow_their_rules():
    from lib import downstream
    assert downstream.repetition_hurts_downstream(_probe_rows("size", {"A": 0.5, "B": 0.6}), ["A", "B"]).verdict == "reproduced"
    assert downstream.repetition_hurts_downstream(_probe_rows("size", {"A": 0.0, "B": 0.6}), ["A", "B"]).verdict == "partly reproduced"
    assert downstream.repetition_hurts_downstream(_probe_rows("size", {"A": 0.0, "B": -0.2}), ["A", "B"]).verdict == "inconclusive"
    assert downstream.repetition_hurts_downstream(_probe_rows("size", {"A": -0.2, "B": -0.2}), ["A", "B"]).verdict == "not reproduced"
    assert downstream.quality_does_not_protect_downstream(_probe_rows("corpus", {"web": 0.5, "wikipedia": 0.4})).verdict == "reproduced"
    assert downstream.quality_does_not_protect_downstream(_probe_rows("corpus", {"web": 0.5, "wikipedia": -0.2})).verdict == "not reproduced"
    assert downstream.ul2_hurts_more_downstream(_probe_rows("objective", {"span": 0.3, "ul2": 0.5})).verdict == "reproduced"
    assert downstream.ul2_hurts_more_downstream(_probe_rows("objective", {"span": 0.3, "ul2": 0.3})).verdict == "not reproduced"
    helps = downstream.pretraining_helps(_probe_rows("size", {"S": 0.5}))
    assert helps["beyond noise"].all()  # 1.0 and 0.5 nats better than scratch, seed spread 0.007
    assert "in 2 of 2 checkpoint cells" in downstream.pretraining_sentence(helps)
    useless = _probe_rows("size", {"S": 0.5}).assign(scratch_test_loss=5.0)  # scratch as good as pre-trained
    assert "mostly measures the fine-tuning" in downstream.pretraining_sentence(downstream.pretraining_helps(useless))
    untestable = downstream.repetition_hurts_downstream(_probe_rows("size", {"A": 0.5}).assign(scratch_test_loss=5.0), ["A"])
    assert untestable.verdict == "untestable at this scale" and "from scratch" in untestable.reason


def test_beside_paper_puts_the_papers_numbers_on_matching_rows():
    from lib import downstream, paper
    table = _probe_rows("corpus", {"web": 0.5, "wikipedia": 0.4}, epochs=(1, 64, 256))
    out = downstream.beside_paper(table, paper.TABLE_2, "corpus", paper_cell="wikipedia")
    assert out.loc[("wikipedia", 256), "paper: SQuAD EM"] == 79.4
    assert out.loc[("web", 256), "paper: SQuAD EM"] == ""  # the paper's Table 2 is Wikipedia only
    ul2 = downstream.beside_paper(_probe_rows("objective", {"span": 0.3, "ul2": 0.5}, epochs=(1, 64)),
                                  paper.TABLE_3, "objective")
    assert ul2.loc[("ul2", 64), "paper: SQuAD EM"] == 79.6  # our most-repeated cell stands in the 2^8 row
    assert ul2.loc[("span", 1), "ours: title loss"].startswith("5.000")


def test_encoder_sentence_says_which_metric_can_rank_checkpoints():
    """Checkpoints that miss the encoder bars: EM and F1 cannot separate them, the title loss can."""
    missed = downstream.encoder_sentence("encoder swap cost +0.011 to +0.020 (XXS, XS, S)", 0.3)
    assert "+0.011 to +0.020" in missed and "title loss" in missed and "exact match" in missed
    assert "clears both encoder bars" in downstream.encoder_sentence("", 0.3)


def test_budget_sentence_says_whether_pretraining_keeps_its_lead():
    def check(long_scratch):
        index = pd.MultiIndex.from_product([[400, 1600], ["pre-trained", "from scratch"]],
                                           names=["fine-tuning steps", "start"])
        return pd.DataFrame({"title loss": [4.0, 4.2, 3.8, long_scratch]}, index=index)

    kept = downstream.budget_sentence(check(3.9))
    assert "+0.200 nats at 400 steps, +0.100 at 1,600" in kept and "keeps its lead" in kept
    lost = downstream.budget_sentence(check(3.7))
    assert "-0.100 at 1,600" in lost and "not an advantage that lasts" in lost
