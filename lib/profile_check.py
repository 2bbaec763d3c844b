"""Do a profile's models do what a T5 model does? The three bars a profile must clear before its
size-dependent findings are tested, judged at 1 epoch over seeds:

(a) ladder: each larger size beats the next smaller one beyond seed noise (95 % interval of the gain
    above zero);
(b) the encoder is used: a span's first-token loss is `FIRST_TOKEN_BAR` nats under the unigram
    model's, and swapping the encoder input for another sequence's costs as much;
(c) margin: the content loss is `CONTENT_MARGIN` nats under the unigram model's (the bigram's
    distance is shown beside it).
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from lib import stats, verdicts

FIRST_TOKEN_BAR = 0.3  # nats: a first token predicted this much better than unigram needs the encoder
CONTENT_MARGIN = 0.5  # nats under unigram on content tokens
DIAGNOSTICS = ["val_loss", "val_content_loss", "val_first_loss", "val_later_loss", "val_encoder_use"]
REFERENCES = {"unigram_first_loss": "unigram first", "unigram_content_loss": "unigram content",
              "bigram_content_loss": "bigram content"}


def diagnostics(results: pd.DataFrame, by: list[str] = ("size", "epochs")) -> pd.DataFrame:
    """Per cell: the diagnostics (mean ± seed sd) beside the references fitted on the same tokens."""
    by = list(by)
    table = verdicts.mean_spread(results, by, DIAGNOSTICS)
    refs = results.groupby(by, sort=False)[list(REFERENCES)].mean().round(3).rename(columns=REFERENCES)
    return table.join(refs)


def _with_gaps(one: pd.DataFrame) -> pd.DataFrame:
    return one.assign(first_gap=one.unigram_first_loss - one.val_first_loss,
                      content_margin=one.unigram_content_loss - one.val_content_loss,
                      bigram_distance=one.val_content_loss - one.bigram_content_loss)


def _row(bar: str, size: str, estimate: stats.Estimate, goal: float) -> dict:
    return {"bar": bar, "size": size, "estimate": estimate.estimate, "low": estimate.low, "high": estimate.high,
            "goal": goal, "met": bool(estimate.estimate >= goal)}


def bars(results: pd.DataFrame, sizes: list[str]) -> pd.DataFrame:
    """One row per bar and size (per size pair for the ladder): estimate, 95 % interval, goal, met.
    Reads the 1-epoch runs of `sizes`; needs two seeds per size for an interval."""
    one = _with_gaps(results[(results.epochs == 1) & results["size"].isin(sizes)])
    rows = []
    ladder = verdicts.size_ladder(one, sizes, "val_loss")
    for _, pair in ladder.iterrows():
        rows.append({"bar": "(a) gain over the next smaller size", "size": f"{pair['larger']} vs {pair['smaller']}",
                     "estimate": pair["gain"], "low": pair["gain low"], "high": pair["gain high"], "goal": 0.0,
                     "met": pair["beyond noise"]})
    for metric, bar, goal in (("first_gap", "(b) first-token loss under unigram", FIRST_TOKEN_BAR),
                              ("val_encoder_use", "(b) encoder swap cost", FIRST_TOKEN_BAR),
                              ("content_margin", "(c) content loss under unigram", CONTENT_MARGIN),
                              ("bigram_distance", "distance to the bigram (stretch: ≤ 0)", 0.0)):
        cells = stats.Cells(one, "size", metric)
        for size in sizes:
            estimate = cells.contrast({size: 1.0})
            row = _row(bar, size, estimate, goal)
            if metric == "bigram_distance":
                row["met"] = bool(estimate.estimate <= goal)
            rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> str:
    """Markdown: which bars the profile clears, with the numbers of those it misses."""
    lines = []
    for bar, group in table.groupby("bar", sort=False):
        missed = group[~group.met]
        status = "met" if missed.empty else "**not met**"
        detail = "; ".join(f"{r['size']} {r['estimate']:+.3f} ({r['low']:+.3f} to {r['high']:+.3f})"
                           for _, r in group.iterrows())
        lines.append(f"- {bar}, goal {group.goal.iloc[0]:g}: {status}. {detail}.")
    return "\n".join(lines)


def encoder_missing(table: pd.DataFrame, sizes: list[str]) -> str:
    """The sizes whose models miss bar (b), in words ('' if every size clears it)."""
    encoder = table[table.bar.str.startswith("(b)") & table["size"].isin(sizes)]
    missed = encoder[~encoder.met]
    return "; ".join(f"{bar.removeprefix('(b) ')} " + (f"{group.estimate.min():+.3f} to {group.estimate.max():+.3f}"
                                                      if len(group) > 1 else f"{group.estimate.iloc[0]:+.3f}")
                     + f" ({', '.join(group['size'])})" for bar, group in missed.groupby("bar", sort=False))


def gate(verdict: verdicts.Verdict, table: pd.DataFrame, sizes: list[str]) -> verdicts.Verdict:
    """A size comparison on models that do not use their encoder tests nothing about T5 pre-training:
    such a verdict becomes untestable at this scale, keeping what the rule alone found."""
    missed = encoder_missing(table, sizes)
    if not missed or verdict.verdict == verdicts.UNTESTABLE:
        return verdict
    reason = (f"the models do not use their encoder (bar (b), {FIRST_TOKEN_BAR} nats; {missed}), so they have not "
              f"learned what a T5 model learns and their sizes cannot stand for the paper's; on these runs "
              f"alone the rule says *{verdict.verdict}*")
    return dataclasses.replace(verdict, verdict=verdicts.UNTESTABLE, reason=reason)


def size_caveat(ladder_failures: str, table: pd.DataFrame, sizes: list[str]) -> str:
    """Why these sizes cannot stand for the paper's, in words ('' if they can): the ladder fails
    (`lib.verdicts.ladder_failures`), or the models miss bar (b)."""
    if ladder_failures:
        return f"the size ladder does not hold ({ladder_failures})"
    missed = encoder_missing(table, sizes)
    return f"the models do not use their encoder (bar {FIRST_TOKEN_BAR} nats; {missed})" if missed else ""
