"""Committed notebooks are sources: no outputs, no execution counts, a tagged parameters cell."""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reads_profile_from_environment(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert 'os.environ.get("REPEAT_PROFILE", "cpu")' in params[0].source


def test_notebooks_exist():
    assert len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))) >= 12


def test_every_notebook_is_in_the_toc():
    """Only pages listed in _toc.yml are built: a notebook missing there would silently vanish."""
    toc = (ROOT / "_toc.yml").read_text()
    missing = [p.relative_to(ROOT).with_suffix("").as_posix() for p in NOTEBOOKS
               if f"file: {p.relative_to(ROOT).with_suffix('').as_posix()}\n" not in toc]
    assert not missing, f"notebooks not listed in _toc.yml: {missing}"
