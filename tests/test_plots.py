"""A figure cell draws one figure: the book labels each figure cell once, and two figures under one
label fail `make book` (Sphinx's duplicate-target warning, with warnings as errors)."""
import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from lib import plots  # noqa: E402


def _finals():
    return pd.DataFrame([{"size": size, "architecture": arch, "epochs": epochs, "seed": seed,
                          "val_loss": 4 + 0.1 * seed + (0.5 if epochs > 1 else 0)}
                         for size in ("XXS", "XS") for arch in ("dense", "MoE 2", "MoE 16")
                         for epochs in (1, 64) for seed in (0, 1)])


def test_bars_draw_one_panel_per_value_in_one_figure():
    fig = plots.bars(_finals(), "architecture", hue="epochs", panel="size", title="t")
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["size XXS", "size XS"]
    single = plots.bars(_finals()[lambda t: t["size"] == "XS"], "architecture", hue="epochs", title="t")
    assert [ax.get_title() for ax in single.axes] == ["t"]


def test_curves_facet_rows_and_columns_in_one_figure():
    curves = pd.DataFrame([{"pair": pair, "epochs": epochs, "architecture": arch, "seed": seed,
                            "tokens": tokens, "val_loss": 5 - tokens / 1e6}
                           for pair in ("S vs XS MoE 16", "M vs S MoE 8") for epochs in (1, 64)
                           for arch in ("dense", "MoE") for seed in (0, 1) for tokens in (0, 1e5, 1e6)])
    grid = plots.curves(curves, hue="architecture", col="epochs", row="pair")
    assert grid.axes.shape == (2, 2)
