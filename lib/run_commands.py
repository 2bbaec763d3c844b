"""The "run it yourself" box of a finding page: the exact commands that rerun its notebook."""
from __future__ import annotations

from lib.batch import notebooks


def finding_notebooks() -> list[str]:
    """The stems of the finding notebooks (`notebooks/NN_*.ipynb`), in order."""
    return [path.stem for path in notebooks()]


def run_it_yourself(notebook_stem: str) -> str:
    """A MyST admonition with the papermill and `lib.batch` commands for this notebook (cpu profile)."""
    if notebook_stem not in finding_notebooks():
        raise ValueError(f"no finding notebook {notebook_stem!r}; have: {finding_notebooks()}")
    return "\n".join([
        ":::{admonition} Run it yourself",
        ":class: tip",
        "",
        "Re-render this page from the committed `cpu` results (trains nothing):",
        "",
        "```bash",
        f"papermill notebooks/{notebook_stem}.ipynb out.ipynb -p profile cpu",
        "```",
        "",
        "Train and cache whatever runs of this page are missing (needs the full corpora, "
        "see {doc}`/book/data`):",
        "",
        "```bash",
        f"python -m lib.batch --profile cpu --only {notebook_stem[:2]}",
        "```",
        ":::",
    ])
