"""What the `gpu` profile's windows returned: their runs, what the models learned, and findings 3.1
and 3.2 judged on whatever cells have landed (a window trains cells in priority order, so the grid
can be partial; each verdict names the cells it used).
"""
from __future__ import annotations

import json

import pandas as pd

from lib import profile_check, runs, verdicts
from lib.config import RunConfig
from lib.paths import cache_root
from lib.profile_check import FIRST_TOKEN_BAR
from lib.profiles import get_profile

PROFILE = "gpu"
SWEEP_COMMAND = ("python -m lib.pack build --profile gpu   # here, where the corpora are\n"
                 "tools/gpu_sweep.sh                      # on the GPU machine, with the pack sent along\n"
                 "python -m lib.gpu_window import OUT     # here, with what came back")


def configs_of(results: pd.DataFrame) -> list[RunConfig]:
    """The configs of a table's rows (whatever profile the table was read for)."""
    keys = set(results.key) if not results.empty else set()
    return [RunConfig.from_dict(r["config"]) for key, r in runs.cached_results() if key in keys]


def table(profile: str = PROFILE) -> pd.DataFrame:
    """One row per cached run of the profile (empty if it has not run)."""
    rows = [runs.flatten(r) for _, r in runs.cached_results() if r["config"]["profile"] == profile]
    return pd.DataFrame(rows)


def status(results: pd.DataFrame) -> str:
    """Markdown: what has run, on what, or the command to run it."""
    if results.empty:
        return ("The `gpu` profile has not been run yet. One GPU window runs it:\n\n```bash\n"
                f"{SWEEP_COMMAND}\n```")
    cells = results.groupby(["size", "epochs"]).seed.nunique().unstack("epochs").fillna(0).astype(int)
    p = get_profile(PROFILE)
    return (f"{len(results)} `gpu` runs on the `web` corpus (the same data and tokenizer as the `cpu` profile), "
            f"T = 2^{p.total_tokens.bit_length() - 1} tokens, batch {p.batch_size} × {p.input_length} inputs, bf16. "
            "Seeds per cell (rows: size, columns: epochs):\n\n" + cells.to_markdown())


def diagnostics(results: pd.DataFrame) -> pd.DataFrame:
    """Per size and epochs: the diagnostics (mean ± seed sd) beside the references on the same targets."""
    return profile_check.diagnostics(results).sort_index(level=["epochs", "size"])


def encoder_in_use(results: pd.DataFrame) -> pd.DataFrame:
    """At 1 epoch: how far each size's first-token loss is under unigram, against the bar."""
    one = results[results.epochs == 1]
    order = [s for s in get_profile(PROFILE).sizes if s in set(one["size"])]
    gap = (one.unigram_first_loss - one.val_first_loss).groupby(one["size"]).mean().reindex(order)
    swap = one.groupby("size").val_encoder_use.mean().reindex(order)
    return pd.DataFrame({"first token under unigram": gap, "encoder swap cost": swap,
                         f"uses its encoder (both ≥ {FIRST_TOKEN_BAR})": (gap >= FIRST_TOKEN_BAR) & (swap >= FIRST_TOKEN_BAR)})


def one_epoch_curves(results: pd.DataFrame) -> pd.DataFrame:
    """The evaluation curves of the table's 1-epoch runs (for the first-token figure)."""
    return runs.curves(configs_of(results[results.epochs == 1]))


def checks() -> pd.DataFrame:
    """Each GPU window's check (tools/gpu_check.sh): speed of one reduced run, plainly and through
    accelerate launch, against the bf16 matmul peak measured in the same process."""
    rows = []
    for path in sorted((cache_root() / "gpu_window").glob("*/gpu_check.json")):
        report = json.loads(path.read_text())
        for how, run in report["runs"].items():
            rows.append({"window": path.parent.name, "launched": how, "device": run["device"],
                         "input tokens/s": run["tokens_per_second"], "TFLOP/s": run["train_flops_per_second"] / 1e12,
                         "bf16 peak TFLOP/s": run["bf16_matmul_peak_flops"] / 1e12,
                         "fraction of peak": run["fraction_of_bf16_peak"], "val loss": run["val_loss"]})
    return pd.DataFrame(rows)


def sizes_with(results: pd.DataFrame, epochs: list[int], min_seeds: int = 1) -> list[str]:
    """The profile's sizes (in order) that have every one of these epochs with at least min_seeds seeds."""
    if results.empty:
        return []
    counts = results.groupby(["size", "epochs"]).seed.nunique()
    return [s for s in get_profile(PROFILE).sizes if all(counts.get((s, e), 0) >= min_seeds for e in epochs)]


def ladder_verdict(results: pd.DataFrame) -> verdicts.Verdict | None:
    """Finding 3.1 on the sizes with 1-epoch runs, from their curves (None before any have landed)."""
    sizes = sizes_with(results, [1])
    if len(sizes) < 2:
        return None
    one = results[(results.epochs == 1) & results["size"].isin(sizes)]
    cross = verdicts.ladder_crossovers(one, runs.curves(configs_of(one)), sizes)
    return profile_check.gate(verdicts.tokens_grow_with_params(cross, verdicts.n_seeds(one)),
                              profile_check.bars(one, sizes), sizes)


def repetition_verdict(results: pd.DataFrame) -> verdicts.Verdict | None:
    """Finding 3.2 on the sizes that have 1 epoch, the most repetition and a quarter of it."""
    epochs = sorted(results.epochs.unique())
    most = int(epochs[-1]) if epochs else 1
    sizes, quarter = sizes_with(results, [1, most]), sizes_with(results, [most // 4])
    while len(sizes) >= 2 and sizes[-2] not in quarter:  # rule (c) compares the largest with the next on 4U
        sizes = sizes[:-1]
    if len(sizes) < 2:
        return None
    used = results[results["size"].isin(sizes) & results.epochs.isin([1, most // 4, most])]
    return profile_check.gate(verdicts.repetition_degrades(used, sizes), profile_check.bars(used, sizes), sizes)


def verdicts_found(results: pd.DataFrame) -> dict[str, verdicts.Verdict]:
    """Findings 3.1 and 3.2 on the profile's runs, for those with enough cells."""
    found = {"3.1": ladder_verdict(results), "3.2": repetition_verdict(results)} if not results.empty else {}
    return {finding: v for finding, v in found.items() if v is not None}


def chapter_summary(results: pd.DataFrame, finding: str) -> str:
    """Markdown for a finding's chapter: its verdict at the gpu profile and whether those models used
    their encoder, or the command that runs the profile."""
    verdict = verdicts_found(results).get(finding)
    if verdict is None:
        return status(results)
    use = encoder_in_use(results)
    return (verdict._repr_markdown_() + "\n\n*What these models learned:* at 1 epoch their first-token loss is "
            + ", ".join(f"{size} {row.iloc[0]:.3f}" for size, row in use.iterrows())
            + f" nats under the unigram model's (the bar is {FIRST_TOKEN_BAR}), and swapping the encoder input costs "
            + ", ".join(f"{row.iloc[1]:+.3f}" for _, row in use.iterrows())
            + " nats. The chapter *One GPU window* has the design, the diagnostics and the speed.")


def timing(results: pd.DataFrame) -> pd.DataFrame:
    """Per run: training FLOPs, wall-clock seconds and throughput, from which the window driver
    (`lib.gpu_window`) estimates the next cells (their FLOPs over the FLOP rate measured so far)."""
    cols = {"size": "size", "epochs": "epochs", "seed": "seed", "train_flops": "FLOPs", "wall_seconds": "wall s",
            "tokens_per_second": "input tokens/s"}
    out = results[list(cols)].rename(columns=cols)
    out["TFLOP/s"] = results.train_flops / results.train_seconds / 1e12
    return out.sort_values(["epochs", "size", "seed"]).reset_index(drop=True)
