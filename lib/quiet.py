"""One switch for build noise: with `REPEAT_QUIET=1` (the Makefile's `book` target sets it) lib's
progress bars, its cached-run counts and `datasets`' bars and info logs are off; they stay on for
interactive and batch use."""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def quiet() -> bool:
    """True when REPEAT_QUIET is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get("REPEAT_QUIET", "0").lower() not in ("", "0", "false", "no")


def progress(wanted: bool = True) -> bool:
    """Whether to show progress: what the caller wants, unless quiet."""
    return wanted and not quiet()


def bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """A tqdm bar, shown only if `show` and not quiet."""
    return tqdm(iterable, disable=not progress(show), **kwargs)


def silence_datasets() -> None:
    """In quiet mode, switch off `datasets`' progress bars ('Generating train split', map bars) and
    its info logs."""
    if quiet():
        import datasets
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
