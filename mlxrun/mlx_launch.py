"""Runs MLX's own launcher (`mlx.launch`) minus its busy loop.

`python -m mlxrun.mlx_launch ARGS` is `mlx.launch ARGS`, with one change: the
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
from collections.abc import Sequence
from typing import Any


def _output_only_select(
    rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    readable = [fd for fd in rlist if fd != 0]  # fd 0 is /dev/null, given by mlxrun
    return select.select(readable, [], xlist, timeout)


def main() -> None:
    from mlx._distributed_utils import launch  # imports mlx.core: keep it out of module import

    if callable(getattr(launch, "select", None)):
        launch.select = _output_only_select  # type: ignore[attr-defined,assignment]
    sys.argv[0] = "mlx.launch"
    launch.main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
