"""Progress bars for loops over data; `--quiet` turns them off for the whole process."""

from __future__ import annotations

QUIET = False


def track(iterable, description: str, total: int | None = None):
    if QUIET:
        yield from iterable
        return
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, transient=True)
