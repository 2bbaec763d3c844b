"""`python -m lib.run --profile cpu`: train one example cell of the repetition grid end to end.

`--sweep 02 --seeds 0 1` trains every missing run of a finding's grid instead.
"""
from __future__ import annotations

import argparse

from lib import runs, sweeps
from lib.profiles import PROFILES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--sweep", action="append", help="finding number(s): " + ", ".join(sweeps.SWEEPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    if not args.sweep:
        cfg = sweeps.example_cell(args.profile)
        result = runs.run(cfg, allow_train=True)
        print(f"{cfg.label}: {cfg.model.name}, U={cfg.data.unique_tokens:,} x {cfg.data.epochs} epochs: "
              f"final val loss {result['final']['val_loss']:.3f}, best {result['final']['best_val_loss']:.3f}")
        print(f"result: {runs.result_path(cfg)}")
        return
    for name in args.sweep:
        table = runs.run_sweep(sweeps.sweep(name, args.profile, tuple(args.seeds)), allow_train=True)
        print(f"sweep {name}: {len(table)} runs in {runs.runs_dir()}")


if __name__ == "__main__":
    main()
