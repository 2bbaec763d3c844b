"""What the book's reader pages are made from: the "run it yourself" boxes and the paper's markers."""
from __future__ import annotations

from pathlib import Path

import pytest

from lib import paper_sources, run_commands

ROOT = Path(__file__).resolve().parent.parent
FINDINGS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_finding_notebooks_come_from_the_files():
    assert run_commands.finding_notebooks() == FINDINGS and len(FINDINGS) >= 13


@pytest.mark.parametrize("stem", FINDINGS)
def test_run_it_yourself_gives_the_exact_commands(stem):
    box = run_commands.run_it_yourself(stem)
    lines = box.splitlines()
    assert lines[0] == ":::{admonition} Run it yourself" and lines[-1] == ":::"
    assert f"papermill notebooks/{stem}.ipynb out.ipynb -p profile cpu" in lines
    assert f"python -m lib.batch --profile cpu --only {stem[:2]}" in lines


def test_run_it_yourself_refuses_an_unknown_notebook():
    with pytest.raises(ValueError, match="no finding notebook '99_nothing'"):
        run_commands.run_it_yourself("99_nothing")


def test_every_paper_number_has_a_reliability_marker():
    """A number added to lib.paper needs its entry in lib.paper_sources, and markers are the known ones."""
    assert sorted(s.name for s in paper_sources.SOURCES) == sorted(paper_sources.numbers())
    for source in paper_sources.SOURCES:
        assert {source.marker, *(marker for marker, _ in source.notes)} <= set(paper_sources.MARKERS)
        assert f"**[{source.marker}]**" in source.markdown()
