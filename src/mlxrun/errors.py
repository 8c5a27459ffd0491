"""Errors a user can act on, and the exit codes the CLI maps them to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RANK_FAILED = 1
    USAGE = 2
    TIMEOUT = 124
    INTERRUPTED = 130
    TERMINATED = 143


class MlxrunError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(MlxrunError):
    """Bad flags, a missing file, an invalid value: the user must change the call."""


class SpecError(MlxrunError):
    """A job spec (TOML) or hostfile that cannot be used as written."""


class DataError(MlxrunError):
    """Input data that cannot be reduced (for example a token that is not a number)."""


class LaunchError(MlxrunError):
    """The job could not be started (no mlx.launch, no free ports, ...)."""

    exit_code = ExitCode.RANK_FAILED
