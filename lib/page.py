"""What a book page says in words, as MyST Markdown: the verdict box under a finding's title, the
verdict labels, numbers rounded to their spread, and the setup lines of the finding notebooks."""
from __future__ import annotations

import pandas as pd

from lib import paper, verdicts
from lib.verdicts import Verdict

BADGES = {verdicts.REPRODUCED: "success", verdicts.PARTLY: "info", verdicts.NOT: "danger",
          verdicts.INCONCLUSIVE: "warning", verdicts.UNTESTABLE: "dark"}  # sphinx-design badge colours
BOX = "verdict_box"  # the glue name a finding page shows under its title


def label(verdict: str) -> str:
    """The verdict as a coloured sphinx-design badge (MyST role)."""
    return f"{{bdg-{BADGES[verdict]}}}`{verdict}`"


def decimals(spread: float) -> int:
    """Decimals that keep two significant digits of `spread` (3 if it is zero or not finite)."""
    return verdicts.decimals_for(spread, low=0, high=12)


def plus_minus(v: Verdict) -> str:
    """The headline effect as 'estimate ± half-width of its 95 % interval', or why there is none."""
    if v.estimate is None:
        return "no estimate"
    if not v.estimate.spread:
        return f"{v.effect:+.3f} (one seed per cell: no interval)"
    half = (v.high - v.low) / 2
    if half == 0:
        return f"{v.effect:+.3f} (every seed agrees: no spread)"
    d = decimals(half)
    return f"{v.effect:+.{d}f} ± {half:.{d}f}"


def units(v: Verdict) -> float:
    """The effect in units of its noise threshold: estimate / half-width of its 95 % interval (beyond
    ±1 the interval excludes zero); NaN without an interval."""
    if v.estimate is None or not v.estimate.spread or v.high == v.low:
        return float("nan")
    return v.effect / ((v.high - v.low) / 2)


def first_sentence(text: str) -> str:
    """`text` up to its first full stop followed by a space (all of it if there is none)."""
    head, stop, _ = text.partition(". ")
    return head + "." if stop else text.rstrip(".") + "."


def reading(v: Verdict) -> str:
    """One sentence on why the verdict is what it is: the reason if there is one, else the rule's first sentence."""
    text = v.reason or v.sentence
    return first_sentence(text[:1].upper() + text[1:])


def verdict_lines(v: Verdict, claim: str, measures: str, paper_text: str) -> list[str]:
    """The Markdown lines of one verdict: label and claim, our effect, the paper's, one sentence."""
    seeds = f"{v.n_seeds} seed{'s' if v.n_seeds != 1 else ''}"
    return [f"{label(v.verdict)} **{claim}.**", "",
            f"**Ours:** {plus_minus(v)} ({measures}, {v.metric}; 95 % interval, {seeds}).", "",
            f"**Paper:** {paper_text}.", "", reading(v)]


def admonition(title: str, lines: list[str]) -> str:
    """A MyST admonition of class `verdict` (the browser test finds the box by it)."""
    return "\n".join([f"::::{{admonition}} {title}", ":class: verdict", "", *lines, "::::"])


def finding_box(v: Verdict, claim: str, measures: str) -> str:
    """The verdict box of finding `v.finding` (3.1-3.11), the paper's side from `lib.paper.summary`."""
    return admonition(f"Finding {v.finding}: the answer", verdict_lines(v, claim, measures, paper.summary(v.finding)))


def several_box(title: str, items: list[tuple[Verdict, str, str]]) -> str:
    """One box for several verdicts (`items`: verdict, claim, what the effect measures), each against
    the paper's summary of the finding it probes (the first word of `v.finding`)."""
    lines = []
    for v, claim, measures in items:
        lines += [*verdict_lines(v, claim, measures, paper.summary(v.finding.split()[0])), "", "---", ""]
    return admonition(title, lines[:-3])


def probe_setup(prof, ft, repetition_epochs: list[int]) -> str:
    """The downstream chapter's setup line: which checkpoints are probed and how they are fine-tuned."""
    return (f"**Setup.** {prof.name} profile. Checkpoints: notebook 02's grid (sizes {', '.join(prof.grid)}, T = "
            f"{prof.total_tokens:,}, epochs {', '.join(map(str, repetition_epochs))}), notebook 04's "
            f"web/wikipedia pair ({prof.focus}) and notebook 07's span/UL2 pair ({prof.variant}, T = "
            f"{prof.variant_total_tokens:,}), vocabulary of {prof.vocab_size:,} pieces. Fine-tuning: "
            f"{ft.train_examples:,} training articles, {ft.steps} steps "
            f"of {ft.batch_size}, learning rate {ft.lr}, dropout {ft.dropout}, titles up to {ft.target_length} "
            f"tokens; {ft.test_examples} held-out articles are scored.")


def say_missing(table: pd.DataFrame, words: dict[str, str]) -> pd.DataFrame:
    """`table` with each missing value of a column named in `words` replaced by that column's words
    (why the value cannot exist), so that no table shows `nan`."""
    out = table.astype({column: object for column in words})
    for column, text in words.items():
        out[column] = out[column].where(table[column].notna(), text)
    return out


def glue_box(markdown: str) -> None:
    """Glue the box under `BOX` for the page's `{glue:md}` directive (shown nowhere else)."""
    from IPython.display import Markdown
    from myst_nb import glue
    glue(BOX, Markdown(markdown), display=False)


def variant_setup(prof, cfgs: list, seeds: list[int], repeated: int, sizes: list[str] | None = None) -> str:
    """The setup line of a variant finding (3.5-3.11): size(s), T, batch, corpus, repetition, runs."""
    T = prof.variant_total_tokens
    sizes = sizes or [prof.variant]
    named = f"Size {sizes[0]}" if len(sizes) == 1 else f"Sizes {', '.join(sizes[:-1])} and {sizes[-1]}"
    return (f"**Setup.** {named} ({prof.name} profile), T = {T:,} encoder input tokens, batch "
            f"{prof.batch_size} x {prof.input_length}, corpus `{prof.corpus}`; *unique* = 1 epoch of T, *repeated* = "
            f"{repeated} epochs of U = T/{repeated} = {T // repeated:,} tokens. {len(cfgs)} runs, seeds {seeds}.")


def r_star_box(result: pd.DataFrame) -> str:
    """Chapter 12's box: each size's fitted R*_D with its 90 % bootstrap interval beside Muennighoff
    et al.'s (from `scaling_fit.summary`)."""
    ref = paper.MUENNIGHOFF_R_STAR
    lines = []
    for _, row in result.iterrows():
        if not row.identifiable:
            lines.append(f"- **{row['size']}**: no R* (the fit is not identifiable: {row.note}).")
            continue
        if pd.isna(row.r_star_low):
            lines.append(f"- **{row['size']}**: R* = {row.r_star:.3g} (no bootstrap replicate was identifiable: "
                         "no interval).")
            continue
        side = "below" if row.r_star_high < ref else "above" if row.r_star_low > ref else "overlapping"
        lines.append(f"- **{row['size']}**: R* = {row.r_star:.3g} (90 % interval {row.r_star_low:.3g} to "
                     f"{row.r_star_high:.3g}), {side} Muennighoff et al.'s {ref:.3g}.")
    below = int((result.identifiable & (result.r_star_high < ref)).sum())
    return admonition("Fitted R* against Muennighoff et al.: the answer", [
        f"**{below} of {int(result.identifiable.sum())}** identifiable sizes have an R* interval entirely below "
        f"Muennighoff et al.'s {ref:.3g} (a smaller R* means repeated tokens lose their worth sooner).", "", *lines])
