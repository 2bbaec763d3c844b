"""The variant designs of findings 3.5-3.11 (lib.sweeps), close to the authors' recipe: top-2 MoE with
16 experts, the dropout rates, the late-dropout switch points and the weight-decay sweep."""
from __future__ import annotations

from collections import Counter

import pytest

from lib import describe, sweeps
from lib.models import meta_parameter_counts, training_flops_per_input_token
from lib.profiles import get_profile
from lib.tokenizer import NUM_SENTINELS

SEEDS = (0, 1)


def _moe_cells(cfgs):
    return [c for c in cfgs if c.model.num_experts]


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_moe_designs_use_the_st_moe_recipe(profile):
    """3.5, 3.6 and 3.11: every MoE cell routes top-2 with capacity 1.25 (2.0 in evaluation) in every
    other FFN layer, with the baseline's 2 experts, the recipe's 16 or a proxy's count (`moe_pairs`)."""
    pairs = sweeps.moe_pairs(profile)
    if profile == "cpu":
        assert pairs == {"XS": ("S", 16), "S": ("M", 8)}
    proxies = {experts for _, experts in pairs.values()}
    for design in (sweeps.params_vs_flops, sweeps.cheap_moe, sweeps.moe_hparam_transfer):
        cells = _moe_cells(design(profile, SEEDS))
        assert cells
        for c in cells:
            m = c.model
            assert (m.router_top_k, m.capacity_factor, m.eval_capacity_factor, m.sparse_step) == (2, 1.25, 2.0, 2)
        assert {c.model.num_experts for c in cells} <= {*proxies, sweeps.RECIPE_EXPERTS, *sweeps.MOE_BASELINE_EXPERTS}


def test_params_vs_flops_compares_experts_at_equal_flops():
    """3.5, at each backbone: 16 experts and 2 experts (top-2: both see every token) have the same
    FLOPs per token (up to their routers) and different parameters; each on unique and repeated data."""
    p = get_profile("cpu")
    cells = sweeps.params_vs_flops("cpu", SEEDS)
    vocab = p.vocab_size + NUM_SENTINELS
    assert [size for size in dict.fromkeys(c.model.name for c in cells)] == p.moe_backbones == ["XXS", "XS"]
    for size in p.moe_backbones:
        mine = [c for c in cells if c.model.name == size]
        counts = Counter(describe.architecture(c) for c in mine)
        assert counts == {name: 2 * len(SEEDS) for name in
                          ("dense", "shared x2", "half shared x2", "MoE 2", "MoE 16")}
        by_name = {describe.architecture(c): c.model for c in mine}
        small, big = by_name["MoE 2"], by_name["MoE 16"]
        flops = [training_flops_per_input_token(m, vocab, 128, 32) for m in (small, big)]
        assert flops[1] / flops[0] == pytest.approx(1, abs=0.01)
        assert meta_parameter_counts(big, vocab)["params"] > 2 * meta_parameter_counts(small, vocab)["params"]


def test_cheap_moe_proxies_are_a_fraction_of_the_dense_flops():
    """3.6, for each pair: the top-2 proxy has about the next dense size's parameters at well under
    its FLOPs."""
    p = get_profile("cpu")
    vocab = p.vocab_size + NUM_SENTINELS
    cells = sweeps.cheap_moe("cpu", SEEDS)
    assert len(cells) == 4 * len(SEEDS) * len(p.proxy_backbones)
    for backbone, (dense_size, experts) in sweeps.moe_pairs("cpu").items():
        dense = next(c.model for c in cells if c.model.name == dense_size and not c.model.num_experts)
        proxy = next(c.model for c in cells if c.model.name == backbone and c.model.num_experts == experts)
        params = [meta_parameter_counts(m, vocab)["params"] for m in (dense, proxy)]
        flops = [training_flops_per_input_token(m, vocab, 128, 32) for m in (dense, proxy)]
        assert params[1] / params[0] == pytest.approx(1, abs=0.25)  # experts come in powers of two
        assert flops[1] / flops[0] < 0.5


def test_the_largest_size_has_no_proxy():
    with pytest.raises(ValueError, match="largest size"):
        sweeps.moe_proxy("cpu", "M")


def test_late_dropout_has_the_authors_switch_point():
    """3.9: no dropout, dropout 0.1 from the start, and dropout 0.1 from 1/16 (the authors'), 1/4
    and 1/2 of training."""
    assert sweeps.LATE_DROPOUT_STARTS == (1 / 16, 0.25, 0.5)
    cells = sweeps.late_dropout("smoke", SEEDS)
    assert len(cells) == 5 * len(SEEDS)
    designs = Counter((c.model.dropout, c.model.dropout_start) for c in cells)
    assert designs == {(0.0, 0.0): 2, (0.1, 0.0): 2, (0.1, 1 / 16): 2, (0.1, 0.25): 2, (0.1, 0.5): 2}
    assert "dropout 0.1 from 6%" in {describe.regularizer(c) for c in cells}


@pytest.mark.parametrize("design", ["dropout_across_sizes", "moe_hparam_transfer"])
def test_dropout_sweeps_have_five_rates(design):
    """3.10 and 3.11: dropout 0, 0.1, 0.2, 0.3 and 0.5 for every size (3.10) or architecture (3.11)."""
    assert sweeps.DROPOUT_RATES == (0.0, 0.1, 0.2, 0.3, 0.5)
    cells = getattr(sweeps, design)("cpu", SEEDS)
    groups = Counter(c.model.name + describe.architecture(c) for c in cells)
    assert len(cells) == len(groups) * len(SEEDS) * 5
    for group in groups:
        rates = sorted(c.model.dropout for c in cells if c.model.name + describe.architecture(c) == group)
        assert rates == sorted(sweeps.DROPOUT_RATES * len(SEEDS))
    assert len(groups) == (3 if design == "dropout_across_sizes" else 2)


def test_regularizer_grid_sweeps_weight_decay_alone_and_on_dropout():
    """3.8: dropout; DropPath, label smoothing and weight decay 0.1, 1 and 3, each alone and on top of
    dropout 0.1, on repeated data; plus none, and the unique-data reference."""
    cells = sweeps.regularizer_grid("cpu", SEEDS)
    repeated = [c for c in cells if c.data.epochs == sweeps.REPEATED]
    names = Counter(describe.regularizer(c) for c in repeated)
    others = ["droppath 0.1", "label smoothing 0.1", "weight decay 0.1", "weight decay 1", "weight decay 3"]
    expected = ["none", "dropout 0.1", *others, *[f"dropout 0.1 + {name}" for name in others]]
    assert names == {name: len(SEEDS) for name in expected}
    assert len(cells) == len(repeated) + len(SEEDS)
    assert all(c.data.epochs == 1 and describe.regularizer(c) == "none" for c in cells if c not in repeated)
