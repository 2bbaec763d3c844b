"""One grid builder per finding: the configs a notebook runs, from a profile and seeds.

Grids share cells where findings overlap (e.g. the 1-epoch runs of 3.1 and 3.2), so a run is
trained once and read by every notebook that needs it.
"""
from __future__ import annotations

from lib.config import RunConfig
from lib.profiles import get_profile

REPETITION_EPOCHS = (1, 4, 16, 64, 256)  # the paper's 1, 2^6, 2^8 plus Muennighoff's 4 and 16
FIXED_REPETITION = 16  # finding 3.3: repetition held fixed while U grows


def repetition_grid(profile: str, seeds=(0, 1), sizes=None, corpus: str = "web",
                    epochs=REPETITION_EPOCHS) -> list[RunConfig]:
    """Finding 3.2: fixed total T; U = T / epochs; several sizes and seeds (seed-major order,
    so a sweep cut short still holds complete grids for its first seeds)."""
    p = get_profile(profile)
    sizes = sizes or p.grid
    return [p.config(size, unique_tokens=p.total_tokens // e, epochs=e, corpus=corpus, seed=seed,
                     label=f"{size} {corpus} {e}ep")
            for seed in seeds for size in sizes for e in epochs]


def tokens_vs_params(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.1: every size on unique data (1 epoch of T)."""
    return repetition_grid(profile, seeds, sizes=get_profile(profile).ladder, epochs=(1,))


def larger_dataset(profile: str, seeds=(0, 1), size: str | None = None) -> list[RunConfig]:
    """Finding 3.3: (i) fixed repetition (16 epochs) with U growing 4x per step, so T = 16 U;
    (ii) the paper's comparison, same T with 2^6 vs 2^8 epochs (cells of the 3.2 grid), and the
    1-epoch reference at each T of (i)."""
    p = get_profile(profile)
    T, size = p.total_tokens, size or p.focus
    fixed = [p.config(size, unique_tokens=T // FIXED_REPETITION // 4**k, epochs=FIXED_REPETITION,
                      seed=seed, label=f"{size} {FIXED_REPETITION}ep U=T/{16 * 4**k}")
             for k in (0, 1, 2) for seed in seeds]
    fresh = [p.config(size, unique_tokens=T // 4**k, epochs=1, seed=seed, label=f"{size} 1ep T/{4**k}")
             for k in (0, 1, 2) for seed in seeds]
    paper = repetition_grid(profile, seeds, sizes=[size], epochs=(64, 256))
    return fixed + fresh + paper


def quality(profile: str, seeds=(0, 1), size: str | None = None) -> list[RunConfig]:
    """Finding 3.4: the same repetition design on web and on wikipedia (shared tokenizer)."""
    size = size or get_profile(profile).focus
    return [cfg for corpus in ("web", "wikipedia")
            for cfg in repetition_grid(profile, seeds, sizes=[size], corpus=corpus, epochs=(1, 64, 256))]


def learning_rate_check(profile: str, seed: int = 0) -> list[RunConfig]:
    """The single-size slot at 1 epoch with its learning rate, and one half and one third of it:
    is a size's 1-epoch loss an artefact of its learning rate?"""
    p = get_profile(profile)
    lr = p.learning_rates[p.focus]
    return [p.config(p.focus, seed=seed, label=f"{p.focus} lr x{factor}", lr=lr * factor)
            for factor in (1 / 3, 1 / 2, 1)]


def budget_check(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """The two largest grid sizes on unique data at twice the profile's budget: does the size
    ladder appear with more tokens? (The learning-rate schedule stretches with the run.)"""
    p = get_profile(profile)
    return [p.config(size, unique_tokens=2 * p.total_tokens, seed=seed, label=f"{size} 1ep 2T")
            for seed in seeds for size in p.grid[-2:]]


def example_cell(profile: str) -> RunConfig:
    """One cell of the repetition grid (64 epochs of T/64), for `python -m lib.run`."""
    p = get_profile(profile)
    return p.config(p.focus, unique_tokens=p.total_tokens // 64, epochs=64, label="example cell")


SWEEPS = {"01": tokens_vs_params, "02": repetition_grid, "03": larger_dataset, "04": quality}


def sweep(notebook: str, profile: str, seeds=(0, 1)) -> list[RunConfig]:
    if notebook not in SWEEPS:
        raise ValueError(f"unknown sweep {notebook!r}; choose from {sorted(SWEEPS)}")
    return SWEEPS[notebook](profile, seeds)
