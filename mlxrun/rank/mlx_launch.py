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

The job's token never goes on a command line, where any user of either host could read it
(`ps`, /proc/*/cmdline, the ssh command mlx.launch builds). A remote rank's shell reads it
from its standard input, which is ssh's: the launcher writes it there once the rank's
first line (its pid file) shows that the shell has run `stty -echo`, so the pty does not
echo it back. A local rank inherits it in the environment, which only its user can read.

If MLX reorganises its launcher the patches are skipped and mlx.launch runs as is.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Sequence
from typing import Any

from mlxrun.rank.protocol import REMOTE_TMPDIR_ENV, TOKEN_ENV
from mlxrun.rank.timeline import mark

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


PIDFILE_LINE = 'printf "%s\\n" $pidfile; '  # mlx.launch's remote script, after `stty -echo`
READ_TOKEN = f"IFS= read -rs {TOKEN_ENV} && export {TOKEN_ENV}; "


def _patch_remote_process(remote: Any, token: str | None) -> None:
    make_launch, make_kill = remote.make_launch_script, remote.make_kill_script
    preprocess = remote.preprocess_output

    def launch_script(
        rank: int, python: Any, cwd: Any, files: Any, env: Any, command: Any, is_local: bool
    ) -> str:
        script = make_launch(rank, python, cwd, files, env, command, is_local)
        if is_local:
            return str(script)  # a local rank's TMPDIR is already the job's own
        own = f"TMPDIR=$(mktemp -d -t {REMOTE_TMP_TEMPLATE}) && export TMPDIR; "
        if token is not None:
            script = script.replace(PIDFILE_LINE, PIDFILE_LINE + READ_TOKEN, 1)
        return f"{own}export {REMOTE_TMPDIR_ENV}=$TMPDIR; {script}"

    def preprocess_output(self: Any, data: str, is_stdout: bool = False) -> str:
        first = self._pidfile is None
        shown = str(preprocess(self, data, is_stdout))
        if first and token is not None and not self._is_local:
            os.write(self._process.stdin.fileno(), f"{token}\n".encode())
        return shown

    def kill_script(pidfile: str) -> str:
        return str(make_kill(pidfile)).replace("rm ", "rm -f ")

    remote.make_launch_script = staticmethod(launch_script)
    remote.make_kill_script = staticmethod(kill_script)
    remote.preprocess_output = preprocess_output


def main() -> None:
    mark("launcher start")
    from mlx._distributed_utils import launch  # imports mlx.core: keep it out of module import

    mark("launcher imported")

    if callable(getattr(launch, "select", None)):
        launch.select = _output_only_select  # type: ignore[attr-defined,assignment]
    remote = getattr(launch, "RemoteProcess", None)
    patchable = ("make_launch_script", "make_kill_script", "preprocess_output")
    if (
        remote is not None
        and all(callable(getattr(remote, name, None)) for name in patchable)
        and PIDFILE_LINE in remote.make_launch_script(0, None, None, {}, [], ["x"], False)
    ):
        _patch_remote_process(remote, os.environ.get(TOKEN_ENV))
    elif TOKEN_ENV in os.environ:  # the old way: remote ranks see only what --env passes
        sys.argv.insert(1, f"--env={TOKEN_ENV}={os.environ[TOKEN_ENV]}")
    sys.argv[0] = "mlx.launch"
    launch.main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
