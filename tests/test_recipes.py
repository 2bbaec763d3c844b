"""The recipe study's configs and its tokens-to-bar reading, and the GPU chapter's cell selection."""
from __future__ import annotations

import pandas as pd

from lib import gpu_results, recipes


def test_every_recipe_keeps_the_objective_and_the_v2_numerics():
    base = recipes.base_config()
    cfgs = recipes.study()
    assert len({c.key() for c in cfgs}) == len(recipes.RECIPES)
    for cfg in cfgs:
        assert (cfg.precision, cfg.compile, cfg.threads, cfg.kernels) == ("fp32", False, 1, "avx2")
        assert cfg.data.total_tokens == recipes.STUDY_TOKENS and cfg.data.epochs == 1
        assert (cfg.data.objective, cfg.data.noise_density, cfg.data.mean_noise_span) == ("span", 0.15, 3.0)
    plain = next(c for c in cfgs if c.label == "recipe: XS AdamW 3e-3")
    assert plain.key() == base.replace(label=plain.label).key()


def _result(first_losses, unigram_first=6.5):
    curve = [{"tokens": 1000 * (i + 1), "val_first_loss": loss} for i, loss in enumerate(first_losses)]
    return {"curve": curve, "reference": {"unigram_first_loss": unigram_first}}


def test_tokens_to_bar_is_the_first_evaluation_under_the_bar():
    assert recipes.tokens_to_bar(_result([6.6, 6.3, 6.19, 6.0])) == 3000
    assert recipes.tokens_to_bar(_result([6.6, 6.3, 6.25])) is None


def _gpu_table(cells):
    return pd.DataFrame([{"size": s, "epochs": e, "seed": seed} for s, e, seeds in cells for seed in range(seeds)])


def test_gpu_sizes_with_needs_every_epoch_and_keeps_profile_order():
    table = _gpu_table([("M", 1, 2), ("XS", 1, 2), ("XS", 256, 1), ("S", 1, 1), ("M", 256, 2)])
    assert gpu_results.sizes_with(table, [1]) == ["XS", "S", "M"]
    assert gpu_results.sizes_with(table, [1, 256]) == ["XS", "M"]
    assert gpu_results.sizes_with(table, [1], min_seeds=2) == ["XS", "M"]


def test_gpu_status_gives_the_command_before_any_run():
    assert "tools/gpu_sweep.sh" in gpu_results.status(pd.DataFrame())


def test_gpu_page_reads_the_curves_of_the_table_it_is_given(base_cfg, base_result):
    """At the smoke profile (CI) the page shows smoke runs: their curves, not the gpu profile's."""
    smoke_runs = gpu_results.table("smoke")
    assert base_cfg.key() in set(smoke_runs.key)
    assert {c.key() for c in gpu_results.configs_of(smoke_runs)} == set(smoke_runs.key)
    as_one_epoch = smoke_runs.assign(epochs=1)  # the figure reads the 1-epoch rows' curves
    assert not gpu_results.one_epoch_curves(as_one_epoch).empty
    assert gpu_results.configs_of(pd.DataFrame()) == []
