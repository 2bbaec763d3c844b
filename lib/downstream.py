"""The downstream probe's tables and verdicts: our EM / F1 / title loss beside the paper's SQuAD
Tables 1-3, and rules on the intervals of `lib.stats`.

Title loss (teacher-forced nats per title token on the held-out articles) is the continuous
metric the verdicts judge; EM and F1 are the paper's. Wherever pre-training does not beat
fine-tuning from scratch beyond noise, the probe cannot rank checkpoints and the verdict is
untestable there.
"""
from __future__ import annotations

import pandas as pd

from lib import stats
from lib.paper import TABLE_1, TABLE_2
from lib.stats import Cells
from lib.variant_verdicts import paper_ul2_excess
from lib.verdicts import (INCONCLUSIVE, NOT, PARTLY, REPRODUCED, UNTESTABLE, Verdict, claim_size, directional,
                          mean_spread, n_seeds, no_spread, yes)

METRICS = {"exact_match": "EM", "f1": "F1", "test_loss": "title loss"}
LOSS = "test_loss"


def beside_paper(table: pd.DataFrame, paper_table: pd.DataFrame, by: str, paper_cell: str | None = None) -> pd.DataFrame:
    """Our metrics (mean ± seed sd) per `by` and epochs, with the paper's SQuAD EM/F1 on the rows it
    has: matched on `by` where the paper has that column, else only on the `paper_cell` rows (or
    on every row if None), blank elsewhere. Our most-repeated cell stands in the paper's 2^8-epoch row."""
    ours = mean_spread(table, [by, "epochs"], list(METRICS)).rename(columns=lambda m: f"ours: {METRICS[m]}")
    paper = paper_table.rename(columns={"SQuAD EM": "paper: SQuAD EM", "SQuAD F1": "paper: SQuAD F1"})
    paper = paper.assign(epochs=paper.epochs.replace(paper.epochs.max(), table.epochs.max()))
    if by not in paper.columns and paper_cell is not None:
        paper = paper.assign(**{by: paper_cell})
    keys = [by, "epochs"] if by in paper.columns else ["epochs"]
    paper = paper[keys + ["pre-training data", "paper: SQuAD EM", "paper: SQuAD F1"]]
    return ours.reset_index().merge(paper, on=keys, how="left").set_index([by, "epochs"]).astype(object).fillna("")


def rise(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per `by`: each metric at 1 epoch and at the most repetition, and the change between them."""
    most = table.epochs.max()
    mean = table.groupby([by, "epochs"], sort=False)[list(METRICS)].mean()
    rows = {}
    for group in table[by].unique():
        one, many = mean.loc[(group, 1)], mean.loc[(group, most)]
        rows[group] = {**{f"{METRICS[m]} at 1 epoch": one[m] for m in METRICS},
                       **{f"{METRICS[m]} change at {most} epochs": many[m] - one[m] for m in METRICS}}
    return pd.DataFrame(rows).T


CELL = ["size", "corpus", "objective", "unique_tokens", "epochs"]


def _gain(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(gain=table[f"scratch_{LOSS}"] - table[LOSS])


def pretraining_helps(table: pd.DataFrame) -> pd.DataFrame:
    """Per size, corpus, objective and epochs: title loss from scratch minus after pre-training
    (positive: it helps) with its 95 % interval. If pre-training does not help, the probe cannot
    rank checkpoints."""
    cells = Cells(_gain(table), CELL, "gain")
    rows = []
    for cell in cells.keys:
        e = cells.contrast({cell: 1.0})
        rows.append({**dict(zip(CELL, cell)), "title-loss gain over scratch": e.estimate, "low": e.low,
                     "high": e.high, "beyond noise": bool(e.spread and e.low > 0)})
    return pd.DataFrame(rows).set_index(CELL)


def _testable(table: pd.DataFrame, by: str, groups: list[str]) -> dict[str, bool]:
    """Per group: does pre-training beat fine-tuning from scratch at 1 epoch, beyond noise?"""
    cells = Cells(_gain(table), [by, "epochs"], "gain")
    return {g: directional(cells.contrast({(g, 1): 1.0})) == REPRODUCED for g in groups}


def _untestable(finding: str, table: pd.DataFrame, groups: list[str]) -> Verdict:
    reason = (f"pre-training does not beat fine-tuning from scratch beyond noise at 1 epoch for "
              f"{', '.join(groups)}, so the probe cannot rank those checkpoints")
    return Verdict(finding, UNTESTABLE, "The probe cannot rank these checkpoints.", LOSS, None, n_seeds(table),
                   reason=reason)


def _em_drop(table: pd.DataFrame) -> str:
    return " -> ".join(f"{v:g}" for v in table["SQuAD EM"])


def repetition_hurts_downstream(table: pd.DataFrame, sizes: list[str]) -> Verdict:
    """Table 1: the fine-tuned title loss rises from 1 epoch to the most repetition, for every
    size where the probe can rank checkpoints (reproduced), some (partly) or none (not)."""
    cells = Cells(table, ["size", "epochs"], LOSS)
    if not cells.df:
        return no_spread("3.2 downstream", LOSS, table)
    most = int(table.epochs.max())
    testable = _testable(table, "size", sizes)
    if not any(testable.values()):
        return _untestable("3.2 downstream", table, sizes)
    change = {s: cells.contrast(stats.difference((s, most), (s, 1))) for s in sizes}
    labels = {s: directional(change[s]) for s in sizes if testable[s]}
    skipped = [s for s in sizes if not testable[s]]
    verdict = (PARTLY if skipped else REPRODUCED) if all(v == REPRODUCED for v in labels.values()) else (
        PARTLY if REPRODUCED in labels.values() else NOT if all(v == NOT for v in labels.values()) else INCONCLUSIVE)
    em_cells = Cells(table, ["size", "epochs"], "exact_match")
    em = {s: em_cells.contrast(stats.difference((s, most), (s, 1))).estimate for s in sizes}
    sentence = (f"After fine-tuning on the title task, the title loss changes from 1 to {most} epochs by "
                + ", ".join(f"{s} {change[s].interval()}" + ("" if testable[s] else " (untestable)") for s in sizes)
                + f"; EM changes by {', '.join(f'{s} {em[s]:+.1f}' for s in sizes)} points (paper, T5-Base on "
                f"SQuAD: {_em_drop(TABLE_1)}).")
    reason = (f"sizes {', '.join(skipped)} are untestable: pre-training does not beat scratch there" if skipped else "")
    largest = max(labels, key=sizes.index)
    return Verdict("3.2 downstream", verdict, sentence, LOSS, change[largest], n_seeds(table), reason=reason,
                   details={"change": {s: e.estimate for s, e in change.items()}, "labels": labels})


def quality_does_not_protect_downstream(table: pd.DataFrame, clean: str = "wikipedia", noisy: str = "web") -> Verdict:
    """Table 2: pre-training on the cleaner corpus still loses downstream with repetition (its
    rise is above zero), as on web text."""
    cells = Cells(table, ["corpus", "epochs"], LOSS)
    if not cells.df:
        return no_spread("3.4 downstream", LOSS, table)
    if not _testable(table, "corpus", [clean])[clean]:
        return _untestable("3.4 downstream", table, [clean])
    most = int(table.epochs.max())
    change = {c: cells.contrast(stats.difference((c, most), (c, 1))) for c in (noisy, clean)}
    verdict = directional(change[clean])
    sentence = (f"Title loss change from 1 to {most} epochs: {noisy} {change[noisy].interval()}, {clean} "
                f"{change[clean].interval()}: {clean} pre-training still degrades downstream: {yes(verdict)} "
                f"(paper, SQuAD EM on Wikipedia: {_em_drop(TABLE_2)}).")
    return Verdict("3.4 downstream", verdict, sentence, LOSS, change[clean], n_seeds(table),
                   reason="the interval holds zero" if verdict == INCONCLUSIVE else "",
                   details={"change": {c: e.estimate for c, e in change.items()}})


def ul2_hurts_more_downstream(table: pd.DataFrame) -> Verdict:
    """Table 3: UL2's downstream rise with repetition exceeds span corruption's (claim: the
    paper's relative excess of UL2's EM drop over span corruption's)."""
    cells = Cells(table, ["objective", "epochs"], LOSS)
    if not cells.df:
        return no_spread("3.7 downstream", LOSS, table)
    testable = _testable(table, "objective", ["span", "ul2"])
    if not all(testable.values()):
        return _untestable("3.7 downstream", table, [o for o, ok in testable.items() if not ok])
    most = int(table.epochs.max())
    span = cells.contrast(stats.difference(("span", most), ("span", 1)))
    effect = cells.contrast(stats.difference_of_differences(("ul2", most), ("ul2", 1), ("span", most), ("span", 1)))
    claim = claim_size(span, paper_ul2_excess())
    verdict = directional(effect, claim)
    sentence = (f"Title loss change from unique to {most} epochs: span corruption {span.estimate:+.3f}; UL2 minus span "
                f"corruption {effect.interval()}. UL2 degrades more downstream: {yes(verdict)}.")
    return Verdict("3.7 downstream", verdict, sentence, LOSS, effect, n_seeds(table), claim=claim,
                   reason="the interval holds both no difference and the paper's" if verdict == INCONCLUSIVE else "",
                   details={"change_span": span.estimate})


def score_ranges(table: pd.DataFrame, rule: dict[str, float]) -> str:
    """One sentence: the range of EM and F1 over the fine-tuned checkpoints and from scratch, against
    the rule with no model."""
    def span(column: str) -> str:
        return f"{table[column].min():.1f}–{table[column].max():.1f}"
    return (f"Across the {len(table)} fine-tuned checkpoints, EM ranges {span('exact_match')} and F1 {span('f1')} "
            f"(fine-tuned from scratch: EM {span('scratch_exact_match')}, F1 {span('scratch_f1')}); the rule with no "
            f"model scores EM {rule['exact_match']:.1f} and F1 {rule['f1']:.1f}.")


def pretraining_sentence(helps: pd.DataFrame) -> str:
    """What `pretraining_helps` says about the probe: can it rank checkpoints at all?"""
    gains = helps["title-loss gain over scratch"]
    helped, worse = int(helps["beyond noise"].sum()), int((gains < 0).sum())
    sentence = (f"Pre-training beats fine-tuning from scratch beyond noise (95 % interval above zero) in {helped} "
                f"of {len(helps)} checkpoint cells; in {worse} the pre-trained start is worse (mean gain {gains.mean():+.3f} nats).")
    if helped < len(helps) / 2:
        sentence += (" At this scale the probe mostly measures the fine-tuning itself, not what pre-training "
                     "taught, so the differences between checkpoints below are weak evidence either way.")
    return sentence


def budget_sentence(check: pd.DataFrame) -> str:
    """What `finetune.budget_check` says (one checkpoint, one seed): does the pre-trained start still
    beat the from-scratch floor in title loss when fine-tuning runs longer?"""
    loss = check["title loss"].unstack("start")
    gains = loss["from scratch"] - loss["pre-trained"]  # positive: pre-training helps
    short, long = gains.index.min(), gains.index.max()
    sentence = (f"Title loss from scratch minus pre-trained: {gains[short]:+.3f} nats at {short:,} steps, "
                f"{gains[long]:+.3f} at {long:,} (one checkpoint, one seed: no interval). ")
    if gains[long] > 0:
        return sentence + "The pre-trained start keeps its lead when fine-tuning runs longer."
    return sentence + ("With the longer budget the from-scratch model catches up with the pre-trained one or passes "
                       "it: the downstream differences in this chapter are what pre-training leaves for a short "
                       "fine-tuning, not an advantage that lasts.")


def encoder_sentence(missed: str, bar: float) -> str:
    """What the encoder-use bars mean for the probe, from the bars the checkpoints miss
    (`profile_check.encoder_missing`: '' if they clear them)."""
    if not missed:
        return (f"Every grid size clears both encoder bars ({bar} nats): the checkpoints read their input, so "
                "the probe asks what they can already do.")
    return (f"The checkpoints miss the encoder bars ({bar} nats): {missed}. Copying a title out of the lead "
            "is an encoder's job, so exact match and F1 can say little about these checkpoints; the title loss "
            "is what ranks them, where pre-training beats the from-scratch floor beyond noise (above).")
