"""Nested unique subsets repeated to the token budget, and the fixed validation set.

All subsets of a corpus are prefixes of one seeded document order (`subset_seed`), so every
smaller subset is contained in every larger one (as in Muennighoff et al.'s datablations). A
subset of U tokens (counted in encoder inputs) is U / input_length raw chunks; a run reads them
`epochs` times, in a fresh order each epoch, with a fresh noise mask each time a chunk is drawn.
Batch contents depend only on (seed, step), so runs resume exactly and split across processes.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from lib.config import DataConfig
from lib import objectives
from lib.objectives import UL2, SpanCorruption

if TYPE_CHECKING:  # a store is a `lib.tokens.TokenStore` or a `lib.pack.PackStore`: the same streams
    from lib.tokens import TokenStore

VALIDATION_MASK_SEED = 20230522  # the same corrupted validation sequences for every run
REFERENCE_MAX_TOKENS = 2**25  # the references' training tokens: a run's own, up to this many


def span_corruption_for(data: DataConfig, store: TokenStore) -> SpanCorruption:
    return SpanCorruption(data.input_length, store.tokenizer.total_vocab, data.noise_density,
                          data.mean_noise_span)


def objective_for(data: DataConfig, store: TokenStore) -> SpanCorruption | UL2:
    """The run's training objective; every objective reads raw chunks of the same length, so U
    means the same data whatever the objective."""
    return objectives.objective_for(data.objective, data.input_length, store.tokenizer.total_vocab,
                                    data.noise_density, data.mean_noise_span)


def training_document_order(store: TokenStore, subset_seed: int) -> np.ndarray:
    return store.training_order(subset_seed)


def available_unique_tokens(data: DataConfig, store: TokenStore) -> int:
    """The largest U (in encoder input tokens) the corpus's training split can supply."""
    raw_length = objective_for(data, store).raw_length
    return store.training_token_count() // raw_length * data.input_length


def check_subset(data: DataConfig, store: TokenStore) -> None:
    limit = available_unique_tokens(data, store)
    if data.unique_tokens > limit:
        raise ValueError(
            f"unique_tokens={data.unique_tokens:,} exceeds the {limit:,} encoder-input tokens that the "
            f"training split of corpus {data.corpus!r} holds ({store.source}). Choose "
            f"unique_tokens <= {limit:,}, or a larger corpus (max_docs={data.max_docs}).")


def unique_chunks(data: DataConfig, store: TokenStore) -> np.ndarray:
    """The subset: [U / input_length, raw_length] raw chunks, a prefix of the seeded document order."""
    check_subset(data, store)
    raw_length = objective_for(data, store).raw_length
    num_chunks = data.unique_tokens // data.input_length
    stream = store.training_stream(data.subset_seed, num_chunks * raw_length)
    return stream.astype(np.int64).reshape(num_chunks, raw_length)


def reference_chunks(data: DataConfig, store: TokenStore) -> np.ndarray:
    """The chunks a 1-epoch run at this budget trains on (the run's own tokens when it is one; at most
    REFERENCE_MAX_TOKENS): what the unigram and bigram references are fitted on, the same for every
    repetition of one budget."""
    tokens = min(data.total_tokens, REFERENCE_MAX_TOKENS // data.input_length * data.input_length)
    return unique_chunks(dataclasses.replace(data, unique_tokens=tokens, epochs=1), store)


class RepeatedSubset:
    """Batches of (inputs, targets) for each global step of a run, from the run's objective."""

    def __init__(self, data: DataConfig, store: TokenStore, batch_size: int, seed: int):
        self.chunks = unique_chunks(data, store)
        self.objective = objective_for(data, store)
        self.batch_size = batch_size
        self.seed = seed
        self._epoch_orders: dict[int, np.ndarray] = {}

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch not in self._epoch_orders:
            self._epoch_orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.chunks))}
        return self._epoch_orders[epoch]

    def chunk_indices(self, step: int) -> np.ndarray:
        """Which unique chunks the global batch of this step holds (epochs reshuffle the order)."""
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, within = np.divmod(positions, len(self.chunks))
        return np.array([self._epoch_order(int(e))[w] for e, w in zip(epochs, within)])

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """This process's share (rows rank::world_size) of the global batch of `step`."""
        rng = np.random.default_rng([self.seed, 1_000_003, step])
        inputs, targets = self.objective(self.chunks[self.chunk_indices(step)], rng)
        return inputs[rank::world_size], targets[rank::world_size]


def validation_set(data: DataConfig, store: TokenStore, num_sequences: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed span-corrupted sequences from held-out documents: the same probe for every run on this
    corpus, whatever its objective (a UL2 model sees them behind its R-denoiser mode token)."""
    objective = span_corruption_for(data, store)
    stream = store.validation_stream(num_sequences * objective.raw_length)
    available = len(stream) // objective.raw_length
    if available < num_sequences:
        raise ValueError(f"corpus {data.corpus!r} has only {available} held-out sequences; "
                         f"eval_sequences={num_sequences} is too many (use max_docs=None or fewer).")
    raw = stream.astype(np.int64).reshape(num_sequences, objective.raw_length)
    inputs, targets = objective(raw, np.random.default_rng(VALIDATION_MASK_SEED))
    return objective_for(data, store).eval_inputs(inputs), targets
