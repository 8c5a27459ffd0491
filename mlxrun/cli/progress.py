"""Progress bars of bytes done per rank while a reduction runs (on a terminal only).

The bars start with the first progress record, which a worker sends after half a second of
reading: a short job never loads rich's progress display, and a long one loads it while
its ranks work, not before they start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlxrun.launch.supervisor import OnRecord
from mlxrun.launch.verdict import RankStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class RankBars:
    """One bar per rank, fed by the workers' progress records."""

    def __init__(self, console: Callable[[], Console]) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.off = False  # not a terminal: no bars
        self.tasks: dict[int, TaskID] = {}

    def on_record(self, rank: RankStatus, record: dict[str, Any]) -> None:
        if "progress" not in record or self.off:
            return
        progress = self.progress or self._start()
        if progress is None:
            return
        if rank.rank not in self.tasks:
            self.tasks[rank.rank] = progress.add_task("", total=record["total"], rank=rank.rank)
        progress.update(self.tasks[rank.rank], completed=record["progress"])

    def _start(self) -> Progress | None:
        console = self.console()
        if not console.is_terminal:
            self.off = True
            return None
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            TextColumn("rank {task.fields[rank]:>3}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        self.progress = Progress(*columns, console=console, transient=True)
        self.progress.start()
        return self.progress

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def rank_progress(console: Callable[[], Console], enabled: bool) -> Iterator[OnRecord | None]:
    """Yields the callback that turns workers' progress records into bars (drawn on
    `console()` if it is a terminal), or None if not `enabled`."""
    if not enabled:
        yield None
        return
    bars = RankBars(console)
    try:
        yield bars.on_record
    finally:
        bars.stop()
