"""Runs MLX's own launcher (`mlx.launch`) minus its busy loop.

`python -m mlxrun.rank.mlx_launch ARGS` is `mlx.launch ARGS`, with one change: the
launcher's threads wait on their ranks' stdin pipes, which are always
writable, and on its own stdin, which is /dev/null here and always readable,
so each thread spins. On a 2-core machine that takes a core from the ranks
(a CPU-bound 2-rank job ran 2x slower). mlxrun never writes to a rank's
stdin, so waiting only for output is all the launcher needs.

If MLX reorganises its launcher the patch is skipped and mlx.launch runs as is.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Sequence
from typing import Any

POLL_SECONDS = 0.005  # a rank's pipes are closed: it is exiting, look again soon
MAIN_SECONDS = 0.02  # the main thread only forwards queued output: a short nap suffices


def _output_only_select(
    rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    readable = [fd for fd in rlist if fd != 0]  # fd 0 is /dev/null, given by mlxrun
    if not wlist:  # the main thread, which waited on its stdin
        timeout = MAIN_SECONDS if timeout is None else min(timeout, MAIN_SECONDS)
    elif not readable:  # a rank thread whose rank closed its output and is about to exit
        time.sleep(POLL_SECONDS if timeout is None else min(timeout, POLL_SECONDS))
        return [], [], []
    return select.select(readable, [], xlist, timeout)


def main() -> None:
    from mlx._distributed_utils import launch  # imports mlx.core: keep it out of module import

    if callable(getattr(launch, "select", None)):
        launch.select = _output_only_select  # type: ignore[attr-defined,assignment]
    sys.argv[0] = "mlx.launch"
    launch.main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
