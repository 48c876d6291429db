"""A rich progress bar for stages, quiet when output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, **fields)``; shows items done, rate and time left on stderr."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
        disable=not sys.stderr.isatty(),
    )
    task = progress.add_task(description, total=total, info="")
    with progress:

        def advance(n: int = 1, info: str = "") -> None:
            progress.update(task, advance=n, info=info)

        yield advance
    if not sys.stderr.isatty():
        print(f"{description}: {total} done", file=sys.stderr)
