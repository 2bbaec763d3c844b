"""The paper's numbers live only in lib.paper: no notebook's Markdown types one of them again."""
from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib import paper

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.ipynb"))
SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9}
NUMBER = re.compile(r"(?<![\w.^{])(\d[\d,]*(?:\.\d+)?)([KMB]?)(?![A-Za-wyz0-9_^])")  # "0.48x" counts
REFERENCE = re.compile(r"(§|Finding |finding |Insight |Table |Fig\. |Figure |chapter |Hint )$")


def paper_numbers() -> set[float]:
    """Every number lib.paper holds (tables' cells except their epochs column, constants, tuples)."""
    found: set[float] = set()
    for name, value in vars(paper).items():
        if not name.isupper():
            continue
        if isinstance(value, pd.DataFrame):
            cells = value.drop(columns=["epochs"], errors="ignore").select_dtypes("number").to_numpy().ravel()
        else:
            cells = value if isinstance(value, tuple) else (value,)
        found |= {float(x) for x in cells if isinstance(x, (int, float)) and not math.isnan(float(x))}
    return found


def distinctive(token: str, suffix: str) -> bool:
    """Two significant digits or more, and not a small integer (epochs, seeds, sections)."""
    digits = token.replace(",", "").replace(".", "").lstrip("0")
    return len(digits) >= 2 and ("." in token or suffix or float(token.replace(",", "")) >= 100)


def repeated_numbers(text: str, numbers: set[float]) -> list[str]:
    hits = []
    for match in NUMBER.finditer(text):
        token, suffix = match.groups()
        if REFERENCE.search(text[:match.start()]) or not distinctive(token, suffix):
            continue
        decimals = len(token.split(".")[1]) if "." in token else 0
        value, unit = float(token.replace(",", "")) * SCALE[suffix], 0.5 * 10.0 ** -decimals * SCALE[suffix]
        if any(abs(value - n) <= unit * (1 + 1e-9) for n in numbers):
            hits.append(match.group(0))
    return hits


def test_the_check_catches_a_typed_number():
    numbers = paper_numbers()
    assert repeated_numbers("dropout lifts accuracy from 61.7 to 63.0 at 0.48x the cost, 2.8B", numbers) == \
        ["61.7", "63.0", "0.48", "2.8B"]
    assert repeated_numbers("Finding 3.8, 256 epochs, 3 seeds, 0.5 nats", numbers) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_does_not_repeat_the_papers_numbers(path):
    nb = nbformat.read(path, as_version=4)
    numbers = paper_numbers()
    hits = {i: repeated_numbers(c.source, numbers) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"}
    hits = {i: h for i, h in hits.items() if h}
    assert not hits, f"{path.name}: Markdown cells repeat lib.paper's numbers (render them from lib.paper): {hits}"
