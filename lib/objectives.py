"""T5 span corruption (Raffel et al. 2020), after T5's `random_spans_noise_mask`.

A raw chunk of `raw_length` tokens gets `round(raw_length * density)` noise tokens in
`round(noise / mean_span)` spans. Inputs keep the other tokens, with each noise span replaced by
the next sentinel; targets hold each sentinel followed by its span; both end with EOS. The lengths
are fixed, so batches need no padding.

`UL2` mixes denoisers over the same raw chunks (finding 3.7); its batches are padded.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lib.tokenizer import EOS_ID, PAD_ID


def _noise_counts(raw_length: int, density: float, mean_span: float) -> tuple[int, int]:
    num_noise = min(max(int(round(raw_length * density)), 1), raw_length - 1)
    num_spans = max(int(round(num_noise / mean_span)), 1)
    return num_noise, num_spans


def lengths_for_raw(raw_length: int, density: float, mean_span: float) -> tuple[int, int]:
    """(input length, target length) that a raw chunk of this length produces."""
    num_noise, num_spans = _noise_counts(raw_length, density, mean_span)
    return raw_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def raw_length_for_inputs(input_length: int, density: float, mean_span: float) -> tuple[int, int]:
    """The longest raw chunk whose inputs fit `input_length`, and its target length
    (T5's `compute_input_and_target_lengths`)."""
    raw = input_length
    while lengths_for_raw(raw + 1, density, mean_span)[0] <= input_length:
        raw += 1
    return raw, lengths_for_raw(raw, density, mean_span)[1]


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Split `num_items` into `num_segments` non-empty segments uniformly at random: their lengths."""
    first = np.zeros(num_items, dtype=bool)
    first[1 + rng.choice(num_items - 1, size=num_segments - 1, replace=False)] = True
    segment_id = np.cumsum(first)
    return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(raw_length: int, density: float, mean_span: float,
                            rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of noise positions: alternating non-noise/noise spans, starting with non-noise."""
    num_noise, num_spans = _noise_counts(raw_length, density, mean_span)
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    keep_lengths = _random_segmentation(raw_length - num_noise, num_spans, rng)
    interleaved = np.stack([keep_lengths, noise_lengths], axis=1).reshape(-1)
    span_starts = np.cumsum(interleaved)[:-1]
    start_indicator = np.zeros(raw_length, dtype=bool)
    start_indicator[span_starts] = True
    return np.cumsum(start_indicator) % 2 == 1


@dataclass(frozen=True)
class SpanCorruption:
    """Turns raw token chunks into fixed-length (inputs, targets) pairs."""

    input_length: int
    total_vocab: int  # sentinel i has id total_vocab - 1 - i
    density: float = 0.15
    mean_span: float = 3.0
    pads_inputs = False

    @property
    def raw_length(self) -> int:
        return raw_length_for_inputs(self.input_length, self.density, self.mean_span)[0]

    @property
    def padded_input_length(self) -> int:
        return self.input_length

    def eval_inputs(self, inputs: np.ndarray) -> np.ndarray:
        return inputs

    @property
    def target_length(self) -> int:
        return raw_length_for_inputs(self.input_length, self.density, self.mean_span)[1]

    def masks(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([random_spans_noise_mask(self.raw_length, self.density, self.mean_span, rng)
                         for _ in range(batch)])

    def apply(self, raw: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """raw, noise: [batch, raw_length] -> inputs [batch, input_length], targets [batch, target_length]."""
        inputs = self._replace_spans(raw, noise)
        targets = self._replace_spans(raw, ~noise)
        return inputs, targets

    def _replace_spans(self, raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Each masked span -> one sentinel (numbered per row, in order); unmasked tokens kept; + EOS."""
        previous = np.pad(mask[:, :-1], ((0, 0), (1, 0)))
        span_start = mask & ~previous
        sentinel = self.total_vocab - np.cumsum(span_start, axis=1)  # first span gets total_vocab - 1
        tokens = np.where(span_start, sentinel, raw)
        keep = ~mask | span_start
        rows = tokens[keep].reshape(len(raw), -1)
        eos = np.full((len(raw), 1), EOS_ID, dtype=rows.dtype)
        return np.concatenate([rows, eos], axis=1).astype(np.int64)

    def __call__(self, raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.apply(raw, self.masks(len(raw), rng))


# UL2's denoisers (Tay et al. 2022), scaled to our short chunks: R = regular span corruption,
# X = extreme (half the chunk corrupted), S = sequential (prefix-LM). Each example draws one,
# uniformly: R 40 %, X 40 %, S 20 %. Entries: (mode, noise density, mean span); None = prefix-LM.
UL2_DENOISERS = (("R", 0.15, 3.0), ("R", 0.15, 8.0), ("X", 0.5, 3.0), ("X", 0.5, 32.0), ("S", None, None))
UL2_MODES = ("R", "X", "S")  # mode token ids: the last three sentinels, never used for spans here
IGNORE_INDEX = -100  # label padding, skipped by the loss


@dataclass(frozen=True)
class UL2:
    """The UL2 mixture of denoisers over the same raw chunks as span corruption (so a run sees the
    same unique data whatever its objective). Inputs start with the denoiser's mode token and are
    padded with PAD (pass an attention mask); targets are padded with IGNORE_INDEX."""

    input_length: int
    total_vocab: int
    density: float = 0.15
    mean_span: float = 3.0
    pads_inputs = True

    @property
    def raw_length(self) -> int:
        return raw_length_for_inputs(self.input_length, self.density, self.mean_span)[0]

    @property
    def min_prefix(self) -> int:
        return self.raw_length // 3

    @property
    def padded_input_length(self) -> int:
        return self.input_length + 1  # the R denoiser's inputs plus the mode token

    @property
    def target_length(self) -> int:
        spans = [lengths_for_raw(self.raw_length, d, m)[1] for _, d, m in UL2_DENOISERS if d is not None]
        return max(*spans, self.raw_length - self.min_prefix + 1)

    def mode_token(self, mode: str) -> int:
        return self.total_vocab - 100 + UL2_MODES.index(mode)

    def eval_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Span-corruption probe inputs as this objective's R denoiser sees them (mode token first)."""
        return np.concatenate([np.full((len(inputs), 1), self.mode_token("R"), dtype=inputs.dtype), inputs], axis=1)

    @cached_property
    def _denoisers(self) -> list[tuple[str, SpanCorruption | None]]:
        """(mode, span corruption or None for prefix-LM) per entry of UL2_DENOISERS, built once."""
        return [(mode, None if density is None else SpanCorruption(self.input_length, self.total_vocab, density, span))
                for mode, density, span in UL2_DENOISERS]

    def _example(self, raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mode, denoiser = self._denoisers[rng.integers(len(UL2_DENOISERS))]
        if denoiser is None:
            split = int(rng.integers(self.min_prefix, self.input_length))
            inputs, targets = np.append(raw[:split], EOS_ID), np.append(raw[split:], EOS_ID)
        else:
            noise = random_spans_noise_mask(len(raw), denoiser.density, denoiser.mean_span, rng)[None]
            inputs, targets = (row[0] for row in denoiser.apply(raw[None], noise))
        return np.append(self.mode_token(mode), inputs), targets

    def __call__(self, raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        inputs = np.full((len(raw), self.padded_input_length), PAD_ID, dtype=np.int64)
        targets = np.full((len(raw), self.target_length), IGNORE_INDEX, dtype=np.int64)
        for row, chunk in enumerate(raw):
            x, y = self._example(chunk, rng)
            inputs[row, :len(x)], targets[row, :len(y)] = x, y
        return inputs, targets


def objective_for(objective: str, input_length: int, total_vocab: int, density: float = 0.15,
                  mean_span: float = 3.0) -> SpanCorruption | UL2:
    """The training objective by name ("span" or "ul2"); both read raw chunks of the same length."""
    return (UL2 if objective == "ul2" else SpanCorruption)(input_length, total_vocab, density, mean_span)
