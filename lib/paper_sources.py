"""How far each of the paper's numbers in `lib.paper` can be trusted: a reliability marker per number.

The numbers themselves live only in `lib.paper`; this module says where each comes from. The book's
page "The paper's tables" renders both.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lib import paper

MARKERS = {
    "confirmed": "stated in the paper's abstract or official pages (arXiv, OpenReview), in a peer study's "
                 "own paper or released code, or in official configurations and documentation",
    "reported": "from third-party transcriptions of the paper's tables and figures: mutually consistent, "
                "not yet checked against the PDF (arXiv 2305.13230v2)",
    "assumed": "inferred (from T5 defaults, arithmetic or numbers that agree); to be checked in the PDF",
    "unknown": "not established",
    "ours": "not the paper's: a threshold this project chose before its runs",
}


@dataclass(frozen=True)
class Source:
    name: str  # the attribute of lib.paper
    title: str
    where: str  # where in the paper
    marker: str  # of the numbers
    notes: tuple[tuple[str, str], ...] = ()  # (marker, statement) about the setting

    def value(self):
        return getattr(paper, self.name)

    def markdown(self) -> str:
        lines = [f"**{self.title}** ({self.where}; `lib.paper.{self.name}`). "
                 f"Numbers: **[{self.marker}]**.", ""]
        lines += [f"- [{marker}] {statement}" for marker, statement in self.notes]
        return "\n".join(lines)


SOURCES = (
    Source("TABLE_1", "Table 1: repeated C4", "the paper's Table 1, finding 3.2", "reported", (
        ("reported", "2^35 tokens in total, from 2^35 unique C4 tokens (1 epoch) or 2^27 (2^8 epochs)."),
        ("assumed", "The model is T5-Base (T5 1.1): Table 4's baseline equals this table's 2^27 row."),
        ("reported", "C4 Val Acc is the accuracy on held-out span-corruption targets; SQuAD is scored after "
                     "fine-tuning, with a recipe that is [unknown]."),
    )),
    Source("TABLE_2", "Table 2: repeated Wikipedia", "the paper's Table 2, finding 3.4", "reported", (
        ("assumed", "The model is T5-Base, as in Table 1."),
        ("assumed", "English Wikipedia holds far fewer than 2^35 T5 tokens, so the \"2^35\" baseline was "
                    "probably itself repeated; how it was built is [unknown]."),
        ("reported", "No C4 Val Acc is given for Wikipedia."),
    )),
    Source("TABLE_3", "Table 3: span corruption (MLM) and UL2", "the paper's Table 3, finding 3.7", "reported", (
        ("assumed", "The model is T5-Base; 2^27 unique tokens repeated to 2^35."),
        ("reported", "One run per cell, no error bars: the UL2 and MLM drops differ by 0.3 to 0.6 points."),
    )),
    Source("TABLE_4", "Table 4: regularisers on repeated data", "the paper's Table 4, finding 3.8", "reported", (
        ("assumed", "T5-Base on 2^27 unique tokens repeated to 2^35 (the baseline, 61.7, is Table 1's)."),
        ("confirmed", "The \"+\" entries stack on dropout 0.1 (label smoothing 0.1 and DropPath 0.1 on it; weight "
                      "decay on dropout plus label smoothing): the authors' public T5X configs, XueFuzhao/t5x, "
                      "t5x/examples/t5/t5_1_1/examples/base_repeat256_c4_pretrain_dropout1_*.gin."),
        ("reported", "Weight decay: NaN."),
        ("assumed", "The NaN is probably a configuration error: the weight-decay configs set only Adafactor's "
                    "weight_decay_rate_lr_exponent, which in t5x's adafactor.py makes the decay factor about 1 per "
                    "step (the weights are wiped); chapter 08 shows the arithmetic."),
    )),
    Source("MOE_PAIRS", "Mixtures of experts beside dense models", "the paper's Section 3.2 and Figure 6, "
           "finding 3.6", "reported", (
               ("reported", "Each MoE has about its dense partner's parameters at a fraction of its FLOPs; "
                            "throughput 2.1x (MoE-Base) and 3.8x (MoE-Large) the dense model's."),
               ("confirmed", "16 experts, top-2 routing, capacity factor 1.25 (2.0 at evaluation), every fourth "
                             "feed-forward layer sparse, router z-loss 1e-4, load-balancing loss 0.01: the authors' "
                             "configs include flaxformer's st_moe_base.gin and tokens_choose_base.gin."),
               ("assumed", "These give 672M and 2.34B parameters on T5.1.1-Base and -Large, within 4 % of the "
                           "reported sizes."),
           )),
    Source("DENSE_XL_SWEEP_USD", "Cost of tuning dropout on the dense model", "the paper's Section 5, "
           "finding 3.11", "reported", (
               ("reported", "Five T5-XL (2.8B) runs, one per dropout rate, in US dollars."),
               ("assumed", "Cloud TPU prices: about 7.4K US dollars per Dense-XL run, times five."),
           )),
    Source("DENSE_XL_RUN", "Cost of one dense T5-XL run", "the paper's Section 5 (its costs), our arithmetic",
           "reported", (
               ("reported", "About 7.4K US dollars per Dense-XL run."),
               ("assumed", "6 N D for T5-XL (2.85B parameters) at 2^35 tokens is about 5.9e20 FLOPs."),
           )),
    Source("MOE_SWEEP_COST_RATIO", "Cost of tuning dropout on a mixture of experts",
           "the paper's Section 5, finding 3.11", "reported", (
               ("reported", "An MoE-Large dropout sweep (about 10.6K US dollars) plus one Dense-XL run "
                            "(about 7.4K), over a Dense-XL sweep (about 37K)."),
               ("assumed", "Arithmetic check: 18 / 37 = 0.49."),
           )),
    Source("TOKENS_PER_PARAM_SLOPE", "How linear \"roughly linear\" is", "the paper's Figure 2, finding 3.1", "ours", (
        ("reported", "The tokens a model needs grow roughly linearly with its size."),
        ("unknown", "The figure's exact axes and values; this band for the log-log slope is our rule."),
    )),
    Source("MUENNIGHOFF_R_STAR", "How fast repeated tokens lose their value (`R*_D`)",
           "Muennighoff et al. 2023, not this paper; chapter 12", "confirmed", (
               ("confirmed", "The constant as released with their law's fitted coefficients (their paper "
                             "rounds it to 15.4)."),
               ("assumed", "It was fitted mostly on models of about 100M to 9B parameters; tiny models on "
                           "tiny data may show a smaller value."),
           )),
)


def numbers() -> list[str]:
    """The names of the numbers and tables `lib.paper` holds."""
    return [name for name, value in vars(paper).items()
            if name.isupper() and isinstance(value, (pd.DataFrame, float, int, tuple, dict))]
