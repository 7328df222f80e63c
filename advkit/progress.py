"""Progress bars for loops over data, on stderr and only on a terminal; `--quiet` turns them off."""

from __future__ import annotations

import sys

QUIET = False


def track(iterable, description: str, total: int | None = None):
    if QUIET or not sys.stderr.isatty():  # a log file or a pipe gets no bar (and no blank lines)
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, transient=True,
                          console=Console(stderr=True))
