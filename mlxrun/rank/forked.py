"""`python -m MODULE ARGS`, run in a fork of this process instead of a new interpreter.

The fork has Python's start-up and most of the standard library already paid for: the
agent forks its rank's worker (about 0.1 s per rank) and mlxrun's CLI forks mlx.launch
(about 0.07 s of every job's start). It starts as `python -m` would start it:
- Python's own signal handlers, and a signal that arrives meanwhile is held, not lost;
- stdin from /dev/null, stdout and stderr on pipes, unbuffered as with PYTHONUNBUFFERED;
- the given environment, its own session if asked;
- none of this process's other file descriptors, except those it is told to keep. They
  are covered with /dev/null rather than closed: a Python object of the parent that
  still owns one may close it later, and must not close a file the module opened since.

Only where a fork is safe (`can_fork`): on Linux, with one thread (a fork copies only
the calling one, and a lock another thread held would never be released in the child),
and MLX not loaded. Not on macOS, where Python itself calls forking without exec unsafe
(its system libraries may hold threads and state a child must not touch, and the child
would load MLX and Metal): there, and with MLXRUN_NO_FORK=1 or MLXRUN_PORTABLE=1 (which
the tests use to run that path here), every caller starts a new interpreter.
"""

from __future__ import annotations

import io
import os
import runpy
import signal
import sys
import time
from collections.abc import Iterable
from typing import IO

from mlxrun.rank.protocol import PORTABLE_ENV

NO_FORK_ENV = "MLXRUN_NO_FORK"


def can_fork() -> bool:
    threading = sys.modules.get("threading")
    return (
        sys.platform.startswith("linux")
        and os.environ.get(NO_FORK_ENV) != "1"
        and os.environ.get(PORTABLE_ENV) != "1"
        and (threading is None or threading.active_count() == 1)
        and "mlx.core" not in sys.modules
    )


def module_of(argv: list[str]) -> str | None:
    """The module of `python -m MODULE ...` run by this very interpreter, if argv is that
    and this process may fork (can_fork): what a fork of it can run."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m" and can_fork():
        return argv[2]
    return None


class ForkedModule:
    """The forked `python -m module args`; looks like a Popen to its callers: pid,
    stdout, stderr, poll, wait, signals."""

    def __init__(
        self,
        module: str,
        args: list[str],
        env: dict[str, str],
        keep: Iterable[int] = (),
        new_session: bool = False,
    ) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # or the child would write them out again
            stream.flush()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        self.pid = os.fork()
        if self.pid == 0:
            try:
                _restore_signals(held)
                if new_session:
                    os.setsid()
                _stdio(out_w, err_w, keep=set(keep))
            except BaseException:  # noqa: BLE001 - nothing of the parent may run on
                os._exit(127)
            _run_module(module, args, env)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(out_w)
        os.close(err_w)
        self.stdout: IO[bytes] | None = os.fdopen(out_r, "rb", buffering=0)
        self.stderr: IO[bytes] | None = os.fdopen(err_r, "rb", buffering=0)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            if self.returncode is None:
                self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            return self.returncode
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                import subprocess  # only here: its import is 8 ms of every rank's start

                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.01)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _restore_signals(mask: Iterable[int]) -> None:
    """What exec and then Python's start-up would leave: a signal this process catches goes
    back to its default (SIGINT to KeyboardInterrupt); an ignored one stays ignored."""
    for sig in signal.valid_signals():
        handler = signal.getsignal(sig)
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(
                sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            )
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _stdio(out: int, err: int, keep: set[int]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
    try:
        open_fds = [int(name) for name in os.listdir("/dev/fd")]  # Linux and macOS
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd > 2 and fd not in keep and fd != null:
            try:
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass  # not open (the listing's own descriptor)
    stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    setattr(sys, "stdin", stdin)  # noqa: B010 - and __stdin__, which is typed final
    setattr(sys, "__stdin__", stdin)  # noqa: B010
    for fd, name, errors in ((1, "stdout", "strict"), (2, "stderr", "backslashreplace")):
        old = getattr(sys, name)
        new = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),  # unbuffered, as `python -u` makes them
            encoding=getattr(old, "encoding", None),
            errors=errors,
            write_through=True,
        )
        setattr(sys, name, new)
        setattr(sys, f"__{name}__", new)


def _run_module(module: str, args: list[str], env: dict[str, str]) -> None:
    """In the child: become `python -m module args`, then exit with its status."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(env)
        tempfile = sys.modules.get("tempfile")
        if tempfile is not None:  # it keeps the TMPDIR it first saw: the parent's
            setattr(tempfile, "tempdir", None)  # noqa: B010
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - what python -m would print, then exit 1
        import traceback  # only now: it is 5 ms of every rank's start

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
