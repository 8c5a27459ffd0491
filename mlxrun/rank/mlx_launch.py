"""Runs MLX's own launcher (`mlx.launch`) minus its busy loop.

`python -m mlxrun.rank.mlx_launch ARGS` is `mlx.launch ARGS`, with one change: the
launcher's threads wait on their ranks' stdin pipes, which are always
writable, and on its own stdin, which is /dev/null here and always readable,
so each thread spins. On a 2-core machine that takes a core from the ranks
(a CPU-bound 2-rank job ran 2x slower). mlxrun never writes to a rank's
stdin, so waiting only for output is all the launcher needs.

On a remote host, mlx.launch leaves two temp files per rank in /tmp (the rank's pid and
its ring hostfile). Here each remote rank's shell first makes a folder of its own and
points TMPDIR at it, so both land there, and the rank's agent removes the folder when the
rank ends (`rank.agent`); the kill script's `rm` becomes `rm -f`, as the file may be gone.

If MLX reorganises its launcher the patches are skipped and mlx.launch runs as is.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Sequence
from typing import Any

from mlxrun.rank.protocol import REMOTE_TMPDIR_ENV

REMOTE_TMP_TEMPLATE = "mlxrun-remote.XXXXXXXX"
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


def _patch_remote_temp_files(remote: Any) -> None:
    make_launch, make_kill = remote.make_launch_script, remote.make_kill_script

    def launch_script(
        rank: int, python: Any, cwd: Any, files: Any, env: Any, command: Any, is_local: bool
    ) -> str:
        script = make_launch(rank, python, cwd, files, env, command, is_local)
        if is_local:
            return str(script)  # a local rank's TMPDIR is already the job's own
        own = f"TMPDIR=$(mktemp -d -t {REMOTE_TMP_TEMPLATE}) && export TMPDIR; "
        return f"{own}export {REMOTE_TMPDIR_ENV}=$TMPDIR; {script}"

    def kill_script(pidfile: str) -> str:
        return str(make_kill(pidfile)).replace("rm ", "rm -f ")

    remote.make_launch_script = staticmethod(launch_script)
    remote.make_kill_script = staticmethod(kill_script)


def main() -> None:
    from mlx._distributed_utils import launch  # imports mlx.core: keep it out of module import

    if callable(getattr(launch, "select", None)):
        launch.select = _output_only_select  # type: ignore[attr-defined,assignment]
    remote = getattr(launch, "RemoteProcess", None)
    if callable(getattr(remote, "make_launch_script", None)) and callable(
        getattr(remote, "make_kill_script", None)
    ):
        _patch_remote_temp_files(remote)
    sys.argv[0] = "mlx.launch"
    launch.main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
