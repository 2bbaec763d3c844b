"""`python -m lib.batch --profile cpu [--only 02]`: execute finding notebooks with papermill.

Each notebook runs with `profile` injected and training allowed, so missing runs are trained and
cached; the executed copies land in `--out` (the sources in notebooks/ stay output-free).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lib.paths import repo_root
from lib.profiles import PROFILES


def notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [nb for nb in found if nb.name[:2] in only]
        if not found:
            raise SystemExit(f"no notebook matches --only {only}; have: {[nb.name[:2] for nb in notebooks()]}")
    return found


def main(argv: list[str] | None = None) -> None:
    import papermill

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--only", nargs="+", help="notebook numbers, e.g. 02 03")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the notebooks' seeds")
    parser.add_argument("--out", type=Path, help="folder for executed notebooks (default _build/batch/<profile>)")
    args = parser.parse_args(argv)
    out = args.out or repo_root() / "_build" / "batch" / args.profile
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": args.profile, "allow_train": True}
    if args.seeds:
        parameters["seeds"] = args.seeds
    for nb in notebooks(args.only):
        print(f"running {nb.name} at profile {args.profile} -> {out / nb.name}")
        papermill.execute_notebook(str(nb), str(out / nb.name), parameters=parameters,
                                   cwd=str(repo_root()), progress_bar=False)


if __name__ == "__main__":
    main()
