"""The command line: a thin layer over the library.

Exit codes (also in `mlxrun --help` and the README):
  0 success; 1 a rank failed; 2 usage or input error; 124 timeout;
  130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from mlxrun import __version__
from mlxrun.command import parse_ranks, resolve_command
from mlxrun.errors import ExitCode, MlxrunError, UsageError
from mlxrun.hostfile import load_hostfile
from mlxrun.launcher import JobSpec
from mlxrun.output import RankOutput
from mlxrun.report import show_end
from mlxrun.supervisor import Outcome, Supervisor

EXIT_CODES_HELP = (
    "Exit codes: 0 every rank succeeded; 1 a rank failed; 2 usage or input error; "
    "124 timed out; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."
)

app = typer.Typer(
    name="mlxrun",
    help=f"Run, watch and check distributed MLX jobs.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err_console = Console(stderr=True)

OUTCOME_CODES = {
    Outcome.OK: ExitCode.OK,
    Outcome.FAILED: ExitCode.RANK_FAILED,
    Outcome.TIMEOUT: ExitCode.TIMEOUT,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
    Outcome.TERMINATED: ExitCode.TERMINATED,
}

NpOption = Annotated[
    Optional[int],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10
    typer.Option("--np", "-n", help="Number of processes (ranks). Default: 2, or one per host."),
]
BackendOption = Annotated[
    str, typer.Option("--backend", "-b", help="Distributed backend: ring or mpi.")
]
HostfileOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--hostfile", help="mlx.launch hostfile (JSON) to run on several machines."),
]
TimeoutOption = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option("--timeout", help="Stop every rank after this many seconds (exit 124)."),
]


def version_callback(value: bool) -> None:
    if value:
        print(f"mlxrun {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Run, watch and check distributed MLX jobs."""


def job_spec(
    command: tuple[str, ...], np: int | None, backend: str, hostfile: Path | None
) -> JobSpec:
    if backend not in ("ring", "mpi"):
        raise UsageError(f'--backend: unknown backend "{backend}" (use ring or mpi)')
    hf = load_hostfile(hostfile, backend) if hostfile is not None else None
    if hf is not None and np is not None and np != len(hf.hosts):
        raise UsageError(
            f"--np {np} does not match the {len(hf.hosts)} hosts of {hostfile}: "
            "drop --np or edit the hostfile"
        )
    n = len(hf.hosts) if hf is not None else (2 if np is None else np)
    if n < 1:
        raise UsageError(f"--np must be at least 1 (got {n})")
    return JobSpec(command=command, np=n, backend=backend, hostfile=hf)


@app.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog=EXIT_CODES_HELP,
)
def exec_(
    command: Annotated[
        list[str],
        typer.Argument(
            help="What each rank runs: `python script.py ARGS` or just `script.py ARGS`."
        ),
    ],
    np: NpOption = None,
    backend: BackendOption = "ring",
    hostfile: HostfileOption = None,
    timeout: TimeoutOption = None,
    log_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--log-dir", help="Also write DIR/rank-R.stdout.log and .stderr.log per rank."
        ),
    ] = None,
    ranks: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ranks", help="Show only these ranks' lines on the console, e.g. 0,2."),
    ] = None,
    no_label: Annotated[
        bool, typer.Option("--no-label", help="Print rank lines without the [rank R] prefix.")
    ] = False,
) -> None:
    """Run a script on N ranks through mlx.launch, every line labelled with its rank.

    Example: mlxrun exec --np 4 -- python train.py --lr 0.1
    """
    spec = job_spec(resolve_command(command), np, backend, hostfile)
    output = RankOutput(parse_ranks(ranks, spec.np), labels=not no_label, log_dir=log_dir)
    report = Supervisor(spec, output, timeout).run()
    show_end(err_console, report, timeout)
    raise typer.Exit(OUTCOME_CODES[report.outcome])


def _is_click_error(e: Exception) -> bool:
    # Typer raises click's errors (vendored in recent releases): known by their shape.
    return hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int)


def _show_click_error(e: Any) -> int:
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        return ExitCode.OK
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    err_console.print(
        f"Error: {e.format_message()}{hint}", markup=False, highlight=False, soft_wrap=True
    )
    return int(e.exit_code)


def _internal_error(e: Exception) -> int:
    if os.environ.get("MLXRUN_DEBUG") == "1":
        traceback.print_exc()
    else:
        message = (
            f"Error: internal error: {type(e).__name__}: {e} (set MLXRUN_DEBUG=1 for the traceback)"
        )
        err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    return ExitCode.RANK_FAILED


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and an exit code, never a traceback."""
    code: int
    try:
        result = app(args=argv, prog_name="mlxrun", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except MlxrunError as e:
        if os.environ.get("MLXRUN_DEBUG") == "1":
            traceback.print_exc()
        err_console.print(f"Error: {e}", markup=False, highlight=False, soft_wrap=True)
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        code = ExitCode.INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if _is_click_error(e):
            code = _show_click_error(e)
        else:
            code = _internal_error(e)
    sys.exit(int(code))
