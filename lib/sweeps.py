"""One grid builder per finding: the configs a notebook runs, from a profile and seeds.

Grids share cells where findings overlap (e.g. the 1-epoch runs of 3.1 and 3.2), so a run is
trained once and read by every notebook that needs it.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

from lib.config import RunConfig
from lib.models import meta_parameter_counts
from lib.profiles import get_profile
from lib.tokenizer import NUM_SENTINELS

REPETITION_EPOCHS = (1, 4, 16, 64, 256)  # the paper's 1, 2^6, 2^8 plus Muennighoff's 4 and 16
FIXED_REPETITION = 16  # finding 3.3: repetition held fixed while U grows

# Findings 3.5-3.11: the variant size at T = profile.variant_total_tokens, either on unique data
# (1 epoch) or repeated (U = T / 64: the paper's 2^6 epochs).
REPEATED = 64
DROPOUT = 0.1  # the usual rate (the paper's Table 4 rate is not reported)
REGULARIZERS = {  # name -> (model changes, optim changes), each alone and stacked on dropout (Table 4)
    "droppath": ({"droppath": 0.1}, {}),
    "label smoothing": ({}, {"label_smoothing": 0.1}),
}
WEIGHT_DECAYS = (0.1, 1.0, 3.0)  # decoupled (AdamW); strong decay helps with little data (Kim et al., Lovelace et al.)
LATE_DROPOUT_STARTS = (1 / 16, 0.25, 0.5)  # finding 3.9: fraction of training before dropout switches on;
# 1/16 is the authors' switch point (dropout 0 before, 0.1 after)
DROPOUT_RATES = (0.0, 0.1, 0.2, 0.3, 0.5)  # findings 3.10 and 3.11 (the paper's best lies at 0.2-0.3)
# The authors' ST-MoE routing (top-2, capacity 1.25); they made every fourth FFN sparse in 12-layer stacks,
# our 2-3-layer stacks every second one (every fourth would leave most of them dense).
MOE = {"router_top_k": 2, "capacity_factor": 1.25, "sparse_step": 2}
# (flaxformer st_moe_base.gin: top-2 routing, capacity 1.25 in training and 2.0 in evaluation, every
# other FFN sparse, router z-loss 1e-4 and load-balancing loss 0.01, the last two in lib.models)
RECIPE_EXPERTS = 16  # the recipe's experts
MOE_BASELINE_EXPERTS = (2,)  # finding 3.5, besides the proxy's: with top-2, 2 experts compute every token
# with the proxy's FLOPs per token and 2 experts' parameters (the same-FLOPs baseline)


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


def variant_cell(profile: str, size: str | None = None, epochs: int = REPEATED, seed: int = 0, label: str = "",
                 model: dict | None = None, optim: dict | None = None, objective: str = "span") -> RunConfig:
    """One run of the variant designs: `size` (default: the profile's variant size) on U = T / epochs."""
    p = get_profile(profile)
    size = size or p.variant
    cfg = p.config(size, unique_tokens=p.variant_total_tokens // epochs, epochs=epochs, seed=seed,
                   label=f"{size} {epochs}ep {label or 'baseline'}", **(optim or {}))
    return cfg.replace(model=dataclasses.replace(cfg.model, **(model or {})),
                       data=dataclasses.replace(cfg.data, objective=objective))


def moe(experts: int, **changes) -> dict:
    """The model changes of an MoE cell: `experts` with the recipe's routing (`MOE`)."""
    return {"num_experts": experts, **MOE, **changes}


@lru_cache(maxsize=None)
def moe_proxy(profile: str, size: str | None = None) -> tuple[str, int]:
    """Finding 3.6's pair for a backbone (default: the variant size): (dense size, experts) such that
    `size` as a top-2 MoE (`MOE`) has about the trainable parameters of the next larger dense size, at
    a fraction of its FLOPs. Experts are chosen by parameters only (top-k changes FLOPs, not
    parameters); ties go to the recipe's 16."""
    p = get_profile(profile)
    size = size or p.variant
    if size == p.sizes[-1]:
        raise ValueError(f"{size} is the largest size of profile {profile!r}: no larger dense size to stand in for")
    small = p.presets[size]
    dense = p.sizes[p.sizes.index(size) + 1]
    vocab = p.vocab_size + NUM_SENTINELS

    def params(model) -> int:
        return meta_parameter_counts(model, vocab, p.input_length)["params"]

    target = params(p.presets[dense])
    experts = min((2, 4, 8, 16, 32, 64),
                  key=lambda e: (abs(params(dataclasses.replace(small, **moe(e))) - target), e != RECIPE_EXPERTS))
    return dense, experts


def moe_pairs(profile: str) -> dict[str, tuple[str, int]]:
    """Finding 3.6's pairs: each proxy backbone of the profile -> (dense size, experts), smallest first."""
    return {size: moe_proxy(profile, size) for size in get_profile(profile).proxy_backbones}


def params_vs_flops(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.5, at each of the profile's MoE backbones: parameters at fixed FLOPs (top-2 MoE with
    the recipe's 16 experts vs 2 experts; half the layers shared twice) and FLOPs at fixed parameters
    (every layer applied twice), each on unique and on repeated data."""
    p = get_profile(profile)
    cells = []
    for size in p.moe_backbones:
        layers = p.presets[size].num_layers
        variants = [({}, "dense"),
                    ({"layer_repeats": 2}, "shared x2"),
                    ({"num_layers": layers // 2, "num_decoder_layers": layers // 2, "layer_repeats": 2},
                     "half shared x2"),
                    *[(moe(e), f"MoE {e}") for e in (*MOE_BASELINE_EXPERTS, RECIPE_EXPERTS)]]
        cells += [(size, model, label) for model, label in variants]
    return [variant_cell(profile, size, epochs=epochs, seed=seed, model=model, label=label)
            for seed in seeds for size, model, label in cells for epochs in (1, REPEATED)]


def cheap_moe(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.6, for each of the profile's proxy backbones: the MoE proxy (the backbone as a top-2
    MoE, about the next dense size's parameters) and that dense size, on unique and repeated data."""
    cells = []
    for size, (dense, experts) in moe_pairs(profile).items():
        cells += [(dense, {}, ""), (size, moe(experts), f"MoE {experts}")]
    return [variant_cell(profile, size, epochs, seed, model=model, label=label)
            for seed in seeds for epochs in (1, REPEATED) for size, model, label in cells]


def objectives(profile: str, seeds=(0, 1, 2)) -> list[RunConfig]:
    """Finding 3.7: span corruption vs UL2, on unique and repeated data (3 seeds: the gap is small)."""
    return [variant_cell(profile, epochs=epochs, seed=seed, objective=objective,
                         label="baseline" if objective == "span" else "UL2")
            for seed in seeds for objective in ("span", "ul2") for epochs in (1, REPEATED)]


def regularizer_grid(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.8: none, dropout, and each other regularizer (DropPath, label smoothing, decoupled
    weight decay at each of `WEIGHT_DECAYS`) alone and on top of dropout, on repeated data; plus the
    unique-data reference."""
    others = [*REGULARIZERS.items(),
              *[(f"weight decay {wd:g}", ({}, {"weight_decay": wd})) for wd in WEIGHT_DECAYS]]
    cells = [({}, {}, "baseline"), ({"dropout": DROPOUT}, {}, "dropout")]
    for name, (model, optim) in others:
        cells += [(model, optim, name), ({"dropout": DROPOUT, **model}, optim, f"dropout + {name}")]
    return [variant_cell(profile, seed=seed, model=model, optim=optim, label=label)
            for seed in seeds for model, optim, label in cells] + \
        [variant_cell(profile, epochs=1, seed=seed) for seed in seeds]


def late_dropout(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.9: no dropout, dropout from the start, and dropout switched on late (at each of
    `LATE_DROPOUT_STARTS`, the authors' 1/16 of training among them)."""
    starts = (0.0, *LATE_DROPOUT_STARTS)
    return [variant_cell(profile, seed=seed) for seed in seeds] + \
        [variant_cell(profile, seed=seed, model={"dropout": DROPOUT, "dropout_start": start},
                      label=f"dropout from {start:.0%}" if start else "dropout")
         for seed in seeds for start in starts]


def dropout_across_sizes(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.10: dropout rates on repeated data for the grid's sizes."""
    p = get_profile(profile)
    return [variant_cell(profile, size, seed=seed, model={"dropout": rate},
                         label=f"dropout {rate}" if rate else "baseline")
            for seed in seeds for size in p.grid for rate in DROPOUT_RATES]


def moe_hparam_transfer(profile: str, seeds=(0, 1)) -> list[RunConfig]:
    """Finding 3.11: the dropout sweep on the MoE proxy and on the dense size it stands in for."""
    dense, experts = moe_proxy(profile)
    return [cell for seed in seeds for rate in DROPOUT_RATES for cell in (
        variant_cell(profile, dense, seed=seed, model={"dropout": rate},
                     label=f"dropout {rate}" if rate else "baseline"),
        variant_cell(profile, seed=seed, model=moe(experts, dropout=rate),
                     label=f"MoE {experts} dropout {rate}" if rate else f"MoE {experts}"))]


def example_cell(profile: str) -> RunConfig:
    """One cell of the repetition grid (64 epochs of T/64), for `python -m lib.run`."""
    p = get_profile(profile)
    return p.config(p.focus, unique_tokens=p.total_tokens // 64, epochs=64, label="example cell")


SWEEPS = {"01": tokens_vs_params, "02": repetition_grid, "03": larger_dataset, "04": quality,
          "05": params_vs_flops, "06": cheap_moe, "07": objectives, "08": regularizer_grid,
          "09": late_dropout, "10": dropout_across_sizes, "11": moe_hparam_transfer}


def sweep(notebook: str, profile: str, seeds=(0, 1)) -> list[RunConfig]:
    if notebook not in SWEEPS:
        raise ValueError(f"unknown sweep {notebook!r}; choose from {sorted(SWEEPS)}")
    return SWEEPS[notebook](profile, seeds)
