"""Progress bars of bytes done per rank while a reduction runs (on a terminal only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mlxrun.job import OnRecord
from mlxrun.supervisor import RankStatus


@contextmanager
def rank_progress(console: Console, enabled: bool) -> Iterator[OnRecord | None]:
    """Yields the callback that turns workers' progress records into bars, or None."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("rank {task.fields[rank]:>3}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[int, TaskID] = {}

        def on_record(rank: RankStatus, record: dict[str, Any]) -> None:
            if "progress" not in record:
                return
            if rank.rank not in tasks:
                tasks[rank.rank] = progress.add_task("", total=record["total"], rank=rank.rank)
            progress.update(tasks[rank.rank], completed=record["progress"])

        yield on_record
