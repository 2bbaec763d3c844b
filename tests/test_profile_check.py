"""The bars a profile must clear before size comparisons count, and the gate they put on verdicts."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import profile_check, verdicts


def _runs(first_gap: float, swap: float, gain: float = 0.1) -> pd.DataFrame:
    """Two sizes x two seeds at 1 epoch; the larger one `gain` better; references fixed."""
    rows = []
    for i, size in enumerate(["A", "B"]):
        for seed, noise in ((0, 0.004), (1, -0.004)):
            content = 5.0 - i * gain + noise
            rows.append({"size": size, "seed": seed, "epochs": 1, "val_loss": content - 1.0,
                         "val_content_loss": content, "val_first_loss": 6.0 - first_gap + noise,
                         "val_later_loss": content - 0.2, "val_encoder_use": swap + noise,
                         "unigram_first_loss": 6.0, "unigram_content_loss": 5.8, "bigram_content_loss": 4.4})
    return pd.DataFrame(rows)


def _verdict(label: str = verdicts.REPRODUCED) -> verdicts.Verdict:
    return verdicts.Verdict("3.2", label, "What the rule found.", "val_loss", None, 2)


def test_bars_read_ladder_encoder_and_margin():
    bars = profile_check.bars(_runs(first_gap=0.05, swap=0.02), ["A", "B"]).set_index(["bar", "size"])
    assert bars.loc[("(a) gain over the next smaller size", "B vs A"), "met"]
    assert bars.loc[("(a) gain over the next smaller size", "B vs A"), "estimate"] == pytest.approx(0.1)
    assert not bars.loc[("(b) first-token loss under unigram", "A"), "met"]
    assert not bars.loc[("(b) encoder swap cost", "B"), "met"]
    assert bars.loc[("(c) content loss under unigram", "B"), "met"]  # 5.8 - 4.9 = 0.9 >= 0.5
    low, high = bars.loc[("(b) first-token loss under unigram", "A"), ["low", "high"]]
    assert low < 0.05 < high


def test_a_failed_ladder_is_reported():
    bars = profile_check.bars(_runs(first_gap=0.5, swap=0.5, gain=-0.1), ["A", "B"])
    assert not bars[bars.bar.str.startswith("(a)")].met.any()
    assert "**not met**" in profile_check.summary(bars)


def test_gate_makes_size_verdicts_untestable_while_the_encoder_is_idle():
    bars = profile_check.bars(_runs(first_gap=0.05, swap=0.02), ["A", "B"])
    gated = profile_check.gate(_verdict(), bars, ["A", "B"])
    assert gated.verdict == verdicts.UNTESTABLE
    assert "do not use their encoder" in gated.reason and "*reproduced*" in gated.reason
    assert gated.sentence == "What the rule found."
    assert profile_check.size_caveat("", bars, ["A", "B"]).startswith("the models do not use their encoder")
    assert profile_check.size_caveat("B vs A (-0.1)", bars, ["A"]).startswith("the size ladder does not hold")


def test_gate_leaves_verdicts_of_models_that_use_their_encoder():
    bars = profile_check.bars(_runs(first_gap=0.5, swap=0.4), ["A", "B"])
    verdict = _verdict(verdicts.NOT)
    assert profile_check.gate(verdict, bars, ["A", "B"]) is verdict
    assert profile_check.size_caveat("", bars, ["A", "B"]) == ""
    assert "not met" not in profile_check.summary(bars[~bars.bar.str.startswith("distance")])
