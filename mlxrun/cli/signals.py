"""Stop signals outside a job, from mlxrun's first line to its last.

While a job runs, its supervisor turns SIGINT, SIGTERM and SIGHUP into a stop of every
rank (`launch.supervisor`). Before the job (importing the CLI takes a quarter of a second,
then the data are checked) and after it (the result is printed) there is nothing to stop:
the signal raises `Stopped` wherever mlxrun is, and mlxrun exits with 128 + its number,
the code the README gives, without a traceback. Before, SIGINT there printed Python's
KeyboardInterrupt traceback and SIGTERM or SIGHUP killed mlxrun outright. Only the
standard library: this runs before anything else is imported.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal outside a job. A BaseException, as KeyboardInterrupt, so that no
    `except Exception` takes it for an error."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


def stop_behind(e: BaseException | None) -> Stopped | None:
    """The stop signal an exception stands for. Python wraps what some hooks raise in an
    exception of its own: a SIGTERM during the CLI's imports, inside a class's
    __set_name__ (ipaddress, imported by pathlib), came out as "RuntimeError: Error calling
    __set_name__", caused by Stopped, and as a traceback."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, Stopped):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _stop(signum: int, _frame: object) -> None:
    for sig in STOP_SIGNALS:  # mlxrun is on its way out: a second signal changes nothing
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def take_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)


def exiting() -> None:
    """mlxrun's output is written and it exits: a stop signal now has nothing to stop
    (and raised between its last lines it would be a traceback)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
