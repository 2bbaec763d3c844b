"""Span corruption: lengths as T5 computes them, noise statistics, sentinels, and exact inversion."""
from __future__ import annotations

import numpy as np
import pytest

from lib.objectives import (SpanCorruption, lengths_for_raw, random_spans_noise_mask,
                            raw_length_for_inputs)
from lib.tokenizer import EOS_ID

TOTAL_VOCAB = 612  # the smoke tokenizer: 512 pieces + 100 sentinels
VOCAB = TOTAL_VOCAB - 100


def _spans(mask: np.ndarray) -> list[tuple[bool, int]]:
    """Run-length encoding of one boolean row: [(is_noise, length), ...]."""
    change = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [len(mask)]])
    return [(bool(mask[a]), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]


def _t5_lengths(tokens_length: int, density=0.15, mean_span=3.0) -> tuple[int, int]:
    """T5's own `_tokens_length_to_inputs_length_targets_length`, transcribed independently."""
    num_noise = int(round(tokens_length * density))
    num_spans = int(round(num_noise / mean_span))
    return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def test_raw_lengths_match_t5():
    """`raw_length_for_inputs` is T5's compute_input_and_target_lengths: 128 -> (141, 29), 512 -> (568, 114)."""
    assert raw_length_for_inputs(128, 0.15, 3.0) == (141, 29)
    assert raw_length_for_inputs(512, 0.15, 3.0) == (568, 114)
    assert _t5_lengths(568) == (512, 114) and _t5_lengths(569)[0] == 513
    for n in (64, 128, 256, 512):
        raw, target = raw_length_for_inputs(n, 0.15, 3.0)
        assert lengths_for_raw(raw, 0.15, 3.0) == (n, target)
        assert lengths_for_raw(raw + 1, 0.15, 3.0)[0] > n  # the longest chunk that fits


@pytest.mark.parametrize("raw_length", [141, 568])
def test_noise_mask_statistics(raw_length):
    """Over 2000 masks: density 0.15, mean span 3, exact span count, first token never noise,
    span lengths vary, and noise is spread evenly over the interior of the sequence (as in T5,
    the chunk always ends inside a noise span, so the last positions are noisier)."""
    rng = np.random.default_rng(0)
    masks = np.stack([random_spans_noise_mask(raw_length, 0.15, 3.0, rng) for _ in range(2000)])
    expected_noise = round(raw_length * 0.15)
    expected_spans = round(expected_noise / 3.0)
    assert abs(masks.mean() - 0.15) < 0.005
    assert not masks[:, 0].any()
    noise_lengths = []
    for row in masks:
        spans = _spans(row)
        assert [s[0] for s in spans] == [False, True] * expected_spans  # keep/noise alternate
        noise = [n for is_noise, n in spans if is_noise]
        assert len(noise) == expected_spans and sum(noise) == expected_noise
        noise_lengths += noise
    assert abs(np.mean(noise_lengths) - 3.0) < 0.1
    assert np.std(noise_lengths) > 1.0  # lengths are random, not all 3
    half = raw_length // 2
    assert abs(masks[:, 10:half].mean() - masks[:, half:-10].mean()) < 0.01


def test_masks_deterministic_given_seed():
    obj = SpanCorruption(128, TOTAL_VOCAB)
    a = obj.masks(16, np.random.default_rng(7))
    assert np.array_equal(a, obj.masks(16, np.random.default_rng(7)))
    assert not np.array_equal(a, obj.masks(16, np.random.default_rng(8)))


def _reconstruct(inputs: np.ndarray, targets: np.ndarray, total_vocab: int) -> list[int]:
    """Undo span corruption: each sentinel in the inputs -> the target tokens after that sentinel."""
    def is_sentinel(t):
        return t >= total_vocab - 100

    filled, current = {}, None
    for t in targets[:-1]:
        if is_sentinel(t):
            current = int(t)
            filled[current] = []
        else:
            filled[current].append(int(t))
    out = []
    for t in inputs[:-1]:
        out += filled[int(t)] if is_sentinel(t) else [int(t)]
    return out


@pytest.mark.parametrize("input_length", [128, 512])
def test_inputs_targets_format_and_inversion(input_length):
    """Fixed lengths, sentinels counted down from the last id in the same order on both sides,
    EOS last, and inputs + targets give back the raw chunk exactly."""
    obj = SpanCorruption(input_length, TOTAL_VOCAB)
    raw_length, target_length = raw_length_for_inputs(input_length, 0.15, 3.0)
    assert (obj.raw_length, obj.target_length) == (raw_length, target_length)
    rng = np.random.default_rng(1)
    raw = rng.integers(3, VOCAB, size=(32, raw_length))
    inputs, targets = obj(raw, rng)
    assert inputs.shape == (32, input_length) and targets.shape == (32, target_length)
    num_spans = round(round(raw_length * 0.15) / 3.0)
    expected = list(range(TOTAL_VOCAB - 1, TOTAL_VOCAB - 1 - num_spans, -1))
    for x, y, r in zip(inputs, targets, raw):
        assert x[-1] == EOS_ID and y[-1] == EOS_ID
        assert EOS_ID not in x[:-1] and EOS_ID not in y[:-1]
        assert [t for t in x if t >= VOCAB] == expected
        assert [t for t in y if t >= VOCAB] == expected
        assert y[0] == TOTAL_VOCAB - 1  # targets start with <extra_id_0>
        assert _reconstruct(x, y, TOTAL_VOCAB) == r.tolist()


def test_apply_uses_the_given_mask():
    """A hand-made mask: inputs and targets exactly as T5 writes them."""
    obj = SpanCorruption(8, TOTAL_VOCAB)
    raw = np.array([[10, 11, 12, 13, 14, 15, 16, 17]])
    noise = np.array([[False, True, True, False, False, True, False, False]])
    inputs, targets = obj.apply(raw, noise)
    s0, s1, s2 = TOTAL_VOCAB - 1, TOTAL_VOCAB - 2, TOTAL_VOCAB - 3
    assert inputs.tolist() == [[10, s0, 13, 14, s1, 16, 17, EOS_ID]]
    assert targets.tolist() == [[s0, 11, 12, s1, 15, s2, EOS_ID]]
    assert _reconstruct(inputs[0], targets[0], TOTAL_VOCAB) == raw[0].tolist()
