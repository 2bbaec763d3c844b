"""What a model learns: first/later targets and their left neighbours, the encoder-use cost, and the
unigram and bigram references (lib.evaluate), on constructed data and on a real smoke run."""
from __future__ import annotations

import math

import lib  # noqa: F401  (before torch: the CPU kernel pin, so in-process runs match fresh processes)
import numpy as np
import pytest
import torch
from accelerate import Accelerator

from lib.evaluate import evaluate, references, target_roles
from lib.objectives import UL2, SpanCorruption
from lib.subsets import validation_set

VOCAB = 4096
TOTAL_VOCAB = VOCAB + 100
INPUT_LENGTH = 64
NEW_FINAL_KEYS = {"val_first_loss", "val_later_loss", "val_encoder_use"}
REFERENCE_KEYS = {f"{model}_{part}_loss" for model in ("unigram", "bigram") for part in ("content", "first", "later")}


def _consecutive_rows(rows: int, raw_length: int) -> np.ndarray:
    """Raw chunks of distinct consecutive ids (from 3: no pad, EOS or UNK), all below VOCAB."""
    return np.arange(3, 3 + rows * raw_length).reshape(rows, raw_length)


@pytest.fixture(scope="module")
def corrupted():
    """16 span-corrupted chunks of consecutive ids: (raw, noise mask, inputs, targets)."""
    objective = SpanCorruption(INPUT_LENGTH, TOTAL_VOCAB)
    raw = _consecutive_rows(16, objective.raw_length)
    noise = objective.masks(len(raw), np.random.default_rng(7))
    inputs, targets = objective.apply(raw, noise)
    return raw, noise, inputs, targets


def _check_roles(roles: dict, raw: np.ndarray, noise: np.ndarray, targets: np.ndarray) -> None:
    """Roles against the noise mask: first tokens start a noise span, later ones continue it, and
    every content target's left neighbour in the raw text is the id before it."""
    content = roles["content"]
    assert content.sum() == noise.sum()
    assert not (roles["first"] & roles["later"]).any() and ((roles["first"] | roles["later"]) == content).all()
    np.testing.assert_array_equal(roles["left"][content], targets[content] - 1)
    previous = np.pad(noise[:, :-1], ((0, 0), (1, 0)))
    for row in range(len(raw)):
        assert sorted(targets[row][roles["first"][row]]) == sorted(raw[row][noise[row] & ~previous[row]])
        assert sorted(targets[row][roles["later"][row]]) == sorted(raw[row][noise[row] & previous[row]])


def test_target_roles_on_consecutive_ids(corrupted):
    raw, noise, inputs, targets = corrupted
    roles = target_roles(inputs, targets, VOCAB)
    _check_roles(roles, raw, noise, targets)
    after_sentinel = np.zeros_like(targets, dtype=bool)
    after_sentinel[:, 1:] = targets[:, :-1] >= VOCAB
    np.testing.assert_array_equal(roles["first"], after_sentinel & roles["content"])


def test_target_roles_with_the_ul2_mode_token(corrupted):
    """UL2 models read the probe behind their R mode token: the roles are the same."""
    raw, noise, inputs, targets = corrupted
    ul2_inputs = UL2(INPUT_LENGTH, TOTAL_VOCAB).eval_inputs(inputs)
    assert ul2_inputs.shape[1] == inputs.shape[1] + 1 and (ul2_inputs[:, 0] >= VOCAB).all()
    roles = target_roles(ul2_inputs, targets, VOCAB)
    _check_roles(roles, raw, noise, targets)
    for name, value in target_roles(inputs, targets, VOCAB).items():
        np.testing.assert_array_equal(roles[name], value)


def test_bigram_reference_knows_a_deterministic_cycle():
    """On a cycle of n ids the next token is fixed by the previous one: the bigram reference costs
    about 0 nats, the unigram ln(n) (exactly its add-one estimate)."""
    n, raw_length = 16, SpanCorruption(INPUT_LENGTH, TOTAL_VOCAB).raw_length
    cycle = 10 + np.arange(2000 * raw_length) % n
    train = cycle.reshape(2000, raw_length)
    inputs, targets = SpanCorruption(INPUT_LENGTH, TOTAL_VOCAB)(train[:32], np.random.default_rng(0))
    ref = references(train, inputs, targets, VOCAB)
    assert REFERENCE_KEYS <= set(ref)
    for part in ("content", "first", "later"):
        assert ref[f"bigram_{part}_loss"] < 0.01
        assert ref[f"unigram_{part}_loss"] == pytest.approx(-math.log((train.size / n + 1) / (train.size + VOCAB)))
        assert ref[f"unigram_{part}_loss"] == pytest.approx(math.log(n), abs=0.05)
    assert ref["majority_content_accuracy"] == pytest.approx(1 / n, abs=0.05)


class _Decoder(torch.nn.Module):
    """Logits from the decoder's previous label only (`input_ids` ignored), or with `reads_inputs`
    also a preference for ids near the encoder input's mean content id."""

    def __init__(self, reads_inputs: bool):
        super().__init__()
        self.reads_inputs = reads_inputs
        self.table = torch.nn.Embedding(TOTAL_VOCAB, TOTAL_VOCAB)
        torch.nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, input_ids, labels):
        previous = torch.nn.functional.pad(labels[:, :-1], (1, 0))
        logits = self.table(previous)
        if self.reads_inputs:
            content = (input_ids < VOCAB).float()
            centre = (input_ids * content).sum(1) / content.sum(1)
            distance = (torch.arange(TOTAL_VOCAB)[None] - centre[:, None]).abs()
            logits = logits - (distance / 10)[:, None, :]
        return type("Output", (), {"logits": logits})()


@pytest.mark.parametrize("reads_inputs", [False, True])
def test_encoder_use(corrupted, reads_inputs):
    """Zero exactly for a model whose logits ignore `input_ids`; positive for one that reads them."""
    _, _, inputs, targets = corrupted
    metrics = evaluate(_Decoder(reads_inputs), inputs, targets, VOCAB, Accelerator(cpu=True), batch_size=5,
                       encoder_swap=True)
    if reads_inputs:
        assert metrics["val_encoder_use"] > 1.0
    else:
        assert metrics["val_encoder_use"] == 0.0
    assert "val_encoder_use" not in evaluate(_Decoder(reads_inputs), inputs, targets, VOCAB, Accelerator(cpu=True))


def test_smoke_run_reports_the_diagnostics(base_cfg, base_result, store):
    """A trained run's final metrics and references hold the split losses; the content losses are the
    first and later losses weighted by their counts on the run's validation targets."""
    final, ref, last = base_result["final"], base_result["reference"], base_result["curve"][-1]
    assert NEW_FINAL_KEYS <= set(final) and REFERENCE_KEYS <= set(ref)
    assert all({"val_first_loss", "val_later_loss"} <= set(point) for point in base_result["curve"])
    assert "val_encoder_use" in last and not any("val_encoder_use" in p for p in base_result["curve"][:-1])
    assert {k: final[k] for k in NEW_FINAL_KEYS} == {k: last[k] for k in NEW_FINAL_KEYS}
    inputs, targets = validation_set(base_cfg.data, store, base_cfg.eval_sequences)
    roles = target_roles(inputs, targets, store.tokenizer.vocab_size)
    first, later = int(roles["first"].sum()), int(roles["later"].sum())
    assert first > 0 and later > 0 and first + later == roles["content"].sum()
    for prefix, source in (("val", final), ("unigram", ref), ("bigram", ref)):
        loss = {part: source[f"{prefix}_{part}_loss"] for part in ("content", "first", "later")}
        assert loss["content"] == pytest.approx((first * loss["first"] + later * loss["later"]) / (first + later),
                                                rel=1e-6)
    assert ref["bigram_content_loss"] < ref["unigram_content_loss"]
    assert math.isfinite(final["val_encoder_use"])
