"""The repository stands alone: no page, notebook or module sends a reader to a file outside it, and
the book builds from what is committed (no corpus needed)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCANNED = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("book/*.ipynb"), *ROOT.glob("notebooks/*.ipynb"),
                  *ROOT.glob("lib/*.py"), ROOT / "README.md", ROOT / "data" / "fixtures" / "README.md"])
OUTSIDE = re.compile(
    r"\.\./shared|\bshared/(?:corpora|docs)\b"  # the folder beside the repository
    r"|\b(?:PILOT|PAPER|PROVENANCE|TOOLCHAIN|ARCHITECTURE)\.md\b"  # documents that live there
    r"|(?<![\w.~-])/(?:work|home|Users|root|mnt)/"  # absolute paths on someone's machine
)
LINK = re.compile(r"\]\(([^)\s#]+)")  # Markdown link targets


def _offences(path: Path, text: str) -> list[str]:
    """Where `text`, the content of `path`, names a path outside the repository."""
    found = [f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}"
             for line, content in enumerate(text.splitlines(), 1) for match in OUTSIDE.finditer(content)]
    for target in LINK.findall(text):
        if "://" not in target and not target.startswith("mailto:"):
            resolved = (path.parent / target).resolve()
            if ROOT not in resolved.parents:
                found.append(f"{path.relative_to(ROOT)}: link to {target!r} leaves the repository")
    return found


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_names_no_path_outside_the_repository(path):
    offences = _offences(path, path.read_text(encoding="utf-8"))
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("text", ["see ../shared/corpora/PROVENANCE.md", "PILOT.md lesson 5", "in /work/main/lib",
                                  "[notes](../../elsewhere.md)"])
def test_the_scan_catches_outside_paths(text):
    assert _offences(ROOT / "book" / "page.md", text)


def test_the_scan_passes_paths_inside():
    text = "[Data](data.md), [a probe](../notebooks/13_downstream_probe.ipynb), https://example.org/work/x, shared"
    assert _offences(ROOT / "book" / "page.md", text) == []


def test_citation_agrees_with_the_config_and_the_bibliography():
    """book/cite.md's book entry names the repository of _config.yml; its paper entry is references.bib's."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    cite = (ROOT / "book" / "cite.md").read_text()
    assert f"url          = {{{config['repository']['url']}}}" in cite
    bib = (ROOT / "book" / "references.bib").read_text()
    paper = re.search(r"@inproceedings\{xue2023repeat,.*?\n\}", bib, re.S).group(0)
    assert paper in cite


def test_downstream_baseline_is_read_from_the_cache(tmp_path, monkeypatch):
    """Chapter 13's no-model baseline, once computed, needs no corpus (the book builds without one)."""
    from lib import finetune

    score = finetune.lead_baseline_score("smoke")
    monkeypatch.setenv("REPEAT_CORPORA", str(tmp_path / "nowhere"))
    assert finetune.lead_baseline_score("smoke") == score


def test_committed_cpu_baseline_is_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("REPEAT_CACHE_DIR", str(ROOT / "data_cache"))
    monkeypatch.setenv("REPEAT_CORPORA", str(tmp_path / "nowhere"))
    from lib import finetune

    assert 0 < finetune.lead_baseline_score("cpu")["f1"] <= 100
