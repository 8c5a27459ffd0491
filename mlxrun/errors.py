"""Errors a user can act on, and the exit codes the CLI maps them to."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RANK_FAILED = 1
    USAGE = 2
    TIMEOUT = 124  # also a stall
    HUNG_UP = 129  # SIGHUP
    INTERRUPTED = 130
    OUTPUT_CLOSED = 141  # stdout's reader went away, as SIGPIPE would say
    TERMINATED = 143


def one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped, so that an error
    quoting a user's value (a path, a CSV header field) stays one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class MlxrunError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class UsageError(MlxrunError):
    """Bad flags, a missing file, an invalid value: the user must change the call."""


class SpecError(MlxrunError):
    """A job spec (TOML) or hostfile that cannot be used as written."""


class DataError(MlxrunError):
    """Input data that cannot be reduced (for example a token that is not a number)."""


class LaunchError(MlxrunError):
    """The job could not be started (no mlx.launch, no free ports, ...)."""

    exit_code = ExitCode.RANK_FAILED


def did_you_mean(
    word: str, choices: tuple[str, ...], synonyms: Mapping[str, str] | None = None
) -> str:
    """` (did you mean "X"?)` for the closest choice (or a synonym's), else ""."""
    synonym = (synonyms or {}).get(word.lower())
    if synonym in choices:
        return f' (did you mean "{synonym}"?)'
    import difflib  # only for a mistake: ranks import this module

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f' (did you mean "{close[0]}"?)' if close else ""
