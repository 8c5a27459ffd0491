"""The command line: a thin layer over the library.

Exit codes (also in `mlxrun --help` and the README):
  0 success; 1 a rank failed; 2 usage or input error; 124 timeout;
  130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlxrun import __version__
from mlxrun.cli.progress import rank_progress
from mlxrun.cli.render import check_table, histogram_table, result_table, show_end
from mlxrun.cli.signals import Stopped, exiting, stop_behind, take_stop_signals
from mlxrun.data.sources import check_data
from mlxrun.errors import ExitCode, MlxrunError, UsageError
from mlxrun.launch.command import parse_ranks, resolve_command
from mlxrun.launch.hostfile import load_hostfile
from mlxrun.launch.job import job_spec
from mlxrun.launch.output import RankOutput
from mlxrun.launch.supervisor import Supervisor
from mlxrun.rank.timeline import mark
from mlxrun.reduce.job import JobFailed, run_reduction
from mlxrun.reduce.spec import EXAMPLE, Spec, load_spec, spec_for_file

if TYPE_CHECKING:
    from rich.console import Console

EXIT_CODES_HELP = (
    "Exit codes: 0 every rank succeeded; 1 a rank failed; 2 usage or input error; "
    "124 timed out or stalled; 129 hung up (SIGHUP); 130 interrupted (Ctrl-C); "
    "141 stdout closed by its reader; 143 terminated (SIGTERM)."
)

app = typer.Typer(
    name="mlxrun",
    help=f"Run, watch and check distributed MLX jobs.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@functools.cache
def err_console() -> Console:
    """stderr's console. rich loads on first use, which for a job is after its ranks have
    started: its import would otherwise be 40 ms of every start."""
    from rich.console import Console

    return Console(stderr=True)


def out_console() -> Console:
    """stdout's console. On a closed stdout rich would exit with 1 (Console.on_broken_pipe),
    which means "a rank failed" here: it raises BrokenPipeError instead, and main() exits
    with its own code for it."""
    from rich.console import Console

    class PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipeAwareConsole()


def load_display() -> None:
    """rich's console and tables, loaded while the ranks start: before the launch they
    would delay it, after the job they would delay the answer (70 ms either way)."""
    err_console()
    import rich.table  # noqa: F401 - the result table's


NpOption = Annotated[
    Optional[int],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10
    typer.Option("--np", "-n", help="Number of processes (ranks). Default: 2, or one per host."),
]
BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        "-b",
        help="Distributed backend: ring (TCP), mpi, nccl (CUDA), jaccl or jaccl-ring (RDMA over Thunderbolt; needs a hostfile with rdma).",
    ),
]
HostfileOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--hostfile", help="mlx.launch hostfile (JSON) to run on several machines."),
]
ListenIpOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--listen-ip",
        help="With --hostfile: this machine's IP that the hosts reach it at (default: its "
        "address on the route to the first host; also MLXRUN_CHANNEL_HOST).",
    ),
]
PythonOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--python",
        help="With --hostfile: the Python (with mlx and mlxrun) on the hosts, where it is "
        "not at this interpreter's path; `python` in the rank command means it.",
    ),
]
TimeoutOption = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--timeout",
        help="Stop every rank after this many seconds (exit 124), showing first where each was.",
    ),
]
StallOption = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--stall-timeout",
        help="If for this many seconds no rank writes output or does work (ranks waiting in "
        "a collective do none), show every rank's stack and stop the job (exit 124). "
        "SIGUSR1 or SIGQUIT (Ctrl-\\) shows the stacks at any time.",
    ),
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


@app.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog=EXIT_CODES_HELP,
)
def exec_(
    command: Annotated[
        list[str],
        typer.Argument(
            help="What each rank runs: `python script.py ARGS` or just `script.py ARGS`. "
            "`python` and `python3` mean this interpreter, on every host."
        ),
    ],
    np: NpOption = None,
    backend: BackendOption = "ring",
    hostfile: HostfileOption = None,
    listen_ip: ListenIpOption = None,
    python: PythonOption = None,
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
    timestamps: Annotated[
        bool,
        typer.Option(
            "--timestamps", help="Prefix each line with when the rank wrote it (+s since start)."
        ),
    ] = False,
    stall_timeout: StallOption = None,
) -> None:
    """Run a script on N ranks through mlx.launch, every line labelled with its rank
    (and, with --hostfile, its host: `[rank 3 @ node4]`).

    `python` and `python3` as the command run this interpreter (the one mlxrun runs
    with), on every host: a remote host's own `python` may have no mlx.

    Example: mlxrun exec --np 4 -- python train.py --lr 0.1
    """
    command_ = resolve_command(command)
    spec = job_spec(command_, np, backend, hostfile, timeout, stall_timeout, listen_ip, python)
    output = RankOutput(
        parse_ranks(ranks, spec.np), labels=not no_label, log_dir=log_dir, timestamps=timestamps
    )
    report = Supervisor(spec, output, while_starting=err_console).run()
    show_end(err_console(), report, timeout)
    raise typer.Exit(report.outcome.exit_code)


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print only one JSON object on stdout (rank lines go to stderr)."),
]
ColumnOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--column",
        "-c",
        help="csv/tsv/parquet/arrow column (name or index); npz/safetensors array.",
    ),
]


DelimiterOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--delimiter",
        "-d",
        help="csv/tsv field delimiter (one character or tab). Default: sniffed.",
    ),
]
MissingOption = Annotated[
    str,
    typer.Option(
        "--missing",
        help="A missing value (empty, NA, N/A, null, NULL; a null in Parquet/Arrow): "
        "error, or skip it (counted and reported, not reduced).",
    ),
]


PlacementOption = Annotated[
    str,
    typer.Option(
        "--placement",
        help="With --hostfile: shared (every host sees the same FILE; checked) or per-host "
        "(each host has its own FILE at that path; the result combines them).",
    ),
]


def reduce_and_show(spec: Spec, as_json: bool, quiet: bool = False) -> None:
    output = RankOutput(quiet=quiet, stdout=sys.stderr.buffer if as_json else None)
    try:
        with rank_progress(err_console, not as_json) as on_record:
            result = run_reduction(spec, output, on_record, while_starting=load_display)
    except JobFailed as e:
        show_end(err_console(), e.report, e.timeout)
        raise typer.Exit(e.exit_code) from None
    if as_json:
        print(result.to_json())
    else:
        console = out_console()
        console.print(result_table(result, spec.data.describe()))
        hist = histogram_table(result)
        if hist is not None:
            console.print(hist)
        for op, reason in result.reasons.items():
            console.print(f"{op}: {reason}", markup=False, highlight=False)


@app.command("run", epilog=EXIT_CODES_HELP)
def run_(
    spec: Annotated[Path, typer.Argument(help="The job spec (TOML); `mlxrun init` writes one.")],
    np: NpOption = None,
    backend: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--backend",
            "-b",
            help="Distributed backend: ring, mpi, nccl, jaccl or jaccl-ring (overrides the spec).",
        ),
    ] = None,
    hostfile: HostfileOption = None,
    listen_ip: ListenIpOption = None,
    python: PythonOption = None,
    timeout: TimeoutOption = None,
    stall_timeout: StallOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not show the ranks' lines.")
    ] = False,
) -> None:
    """Run the distributed reduction described by a TOML job spec.

    Example: mlxrun run configs/demo.toml --np 4
    """
    job = load_spec(spec).override(np, backend, hostfile, timeout, stall_timeout, listen_ip, python)
    reduce_and_show(job, as_json, quiet)


def add_shortcut(name: str, ops: tuple[str, ...], summary: str) -> None:
    def shortcut(
        file: Annotated[
            Path,
            typer.Argument(
                help="Data: .txt/.csv/.tsv text, .npy, .npz, .safetensors, .parquet or "
                ".arrow/.feather."
            ),
        ],
        np: NpOption = None,
        column: ColumnOption = None,
        delimiter: DelimiterOption = None,
        missing: MissingOption = "error",
        backend: BackendOption = "ring",
        hostfile: HostfileOption = None,
        placement: PlacementOption = "shared",
        listen_ip: ListenIpOption = None,
        python: PythonOption = None,
        timeout: TimeoutOption = None,
        stall_timeout: StallOption = None,
        as_json: JsonOption = False,
    ) -> None:
        col: str | int | None = int(column) if column is not None and column.isdigit() else column
        spec = spec_for_file(file, ops, col, np, backend, delimiter, missing, placement)
        spec = spec.override(
            hostfile=hostfile,
            timeout=timeout,
            stall_timeout=stall_timeout,
            listen_ip=listen_ip,
            python=python,
        )
        reduce_and_show(spec, as_json)

    shortcut.__doc__ = f"{summary}\n\nExample: mlxrun {name} --np 4 data.txt"
    app.command(name, epilog=EXIT_CODES_HELP)(shortcut)


SHORTCUTS = {
    "sum": "The exact sum of the numbers in FILE (floats correctly rounded).",
    "mean": "The mean of the numbers in FILE (correctly rounded).",
    "min": "The smallest number in FILE.",
    "max": "The largest number in FILE.",
    "count": "How many numbers FILE holds.",
    "prod": "The product of the numbers in FILE (float64: may overflow to inf).",
    "var": "The population variance of the numbers in FILE.",
    "std": "The population standard deviation of the numbers in FILE.",
}
for _op, _summary in SHORTCUTS.items():
    add_shortcut(_op, (_op,), _summary)
add_shortcut(
    "stats",
    ("count", "sum", "mean", "std", "min", "max"),
    "count, sum, mean, std, min and max of FILE in one pass.",
)


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="The job spec (TOML) to check.")]) -> None:
    """Check a job spec and its data without running it (exit 0 if it would run)."""
    s = load_spec(spec)
    check_data(s.data)
    if s.job.hostfile is not None:
        load_hostfile(s.job.hostfile, s.job.backend)
    print(
        f"ok: {spec}: job {s.job.name!r}, {s.job.np} ranks, {s.job.backend}, "
        f"{s.data.describe()} ({s.data.format}), ops {', '.join(s.ops)}"
    )


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example spec.")] = Path(
        "job.toml"
    ),
) -> None:
    """Write a commented example job spec (never overwrites a file)."""
    try:
        with path.open("x") as f:
            f.write(EXAMPLE)
    except FileExistsError:
        raise UsageError(
            f"{path}: already exists; choose another path or remove it first"
        ) from None
    except OSError as e:
        raise UsageError(f"{path}: cannot write ({e.strerror})") from None
    print(f"wrote {path}: run it with `mlxrun run {path}`")


@app.command(
    epilog="Exit codes: 0 nothing failed (warnings allowed); 1 a check failed; 2 usage error."
)
def check(
    hostfile: HostfileOption = None,
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="Which backends to check: ring, mpi or all.")
    ] = "all",
    np: Annotated[int, typer.Option("--np", "-n", help="Ranks for the live tests.")] = 2,
    quick: Annotated[
        bool, typer.Option("--quick", help="Skip the live tests (under 2 s).")
    ] = False,
    port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--port", help="Also check this ring port block (default: mlx.launch's 32323)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON report.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table to paste into a bug report.")
    ] = False,
    python: PythonOption = None,
) -> None:
    """Diagnose this setup: can it run distributed MLX jobs, and what to change if not."""
    from mlxrun.check import checks as d
    from mlxrun.check.rows import FAIL

    if backend not in ("ring", "mpi", "all"):
        raise UsageError(f'--backend: unknown backend "{backend}" (use ring, mpi or all)')
    if np < 2:
        raise UsageError(f"--np must be at least 2 for the live tests (got {np})")
    if hostfile is not None and not hostfile.is_file():
        raise UsageError(f"{hostfile}: hostfile not found")
    backends = ("ring", "mpi") if backend == "all" else (backend,)
    rows = d.run_checks(d.Options(backends, np, hostfile, quick, port, python))
    if as_json:
        print(d.to_json(rows))
    elif markdown:
        print(d.to_markdown(rows))
    else:
        out_console().print(check_table(rows))
        print(d.summary(rows))
    raise typer.Exit(1 if any(r.status == FAIL for r in rows) else 0)


BENCH_EXIT_CODES_HELP = (
    "Exit codes: 0 every row ran and checked out; 1 a rank failed, a value was wrong "
    "(#wrong above 0) or the average busbw is below --min-busbw; 2 usage error; "
    "124 timed out or stalled (a row must take less than --stall-timeout); 129 hung up; "
    "130 interrupted (Ctrl-C); 141 stdout closed; 143 terminated (SIGTERM)."
)


@app.command("bench", epilog=BENCH_EXIT_CODES_HELP)
def bench(
    np: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--np", help="Number of processes (ranks). Default: 2, or one per host."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="Distributed backend: ring (TCP), mpi, nccl (CUDA), jaccl or jaccl-ring (RDMA over Thunderbolt; needs a hostfile with rdma).",
        ),
    ] = "ring",
    hostfile: HostfileOption = None,
    listen_ip: ListenIpOption = None,
    op: Annotated[
        str,
        typer.Option(
            "--op",
            help="all_sum, all_max, all_min, all_gather, sum_scatter, send_recv, a comma list, or all.",
        ),
    ] = "all_sum",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            help="float32, float16, bfloat16, float64, int32, int64, a comma list, or all.",
        ),
    ] = "float32",
    min_bytes: Annotated[
        str,
        typer.Option(
            "--minbytes", "-b", help="Smallest size: bytes, or 1K, 64M, 1G (powers of 1024)."
        ),
    ] = "1K",
    max_bytes: Annotated[str, typer.Option("--maxbytes", "-e", help="Largest size.")] = "32M",
    factor: Annotated[
        int, typer.Option("--stepfactor", "-f", help="Each size is the last times this.")
    ] = 2,
    iters: Annotated[int, typer.Option("--iters", "-n", help="Timed iterations per size.")] = 20,
    warmup: Annotated[
        int, typer.Option("--warmup-iters", "-w", help="Untimed iterations first.")
    ] = 5,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Run once more and count the values that differ from the exact result.",
        ),
    ] = True,
    stream: Annotated[
        str,
        typer.Option("--stream", help="cpu (default) or gpu: the MLX stream of the collectives."),
    ] = "cpu",
    min_busbw: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--min-busbw", help="Exit 1 if the average busbw (GB/s) is below this."),
    ] = None,
    as_json: JsonOption = False,
    csv_path: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--csv", help="Also write the rows to this CSV file."),
    ] = None,
    plot_path: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--plot", help="Also draw busbw against size to FILE.png (needs mlxrun[plot])."
        ),
    ] = None,
    timeout: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--timeout", help="Stop every rank after this many seconds (exit 124). Default: 600."
        ),
    ] = None,
    stall_timeout: StallOption = None,
) -> None:
    """Benchmark MLX collectives the way nccl-tests does: time, algbw, busbw and #wrong per size.

    Example: mlxrun bench --np 2 --op all_sum -b 1K -e 64M
    """
    import uuid

    from mlxrun.bench import spec as bench_spec_module
    from mlxrun.bench.run import BenchFailed, run_bench
    from mlxrun.cli import bench_render

    job = job_spec((), np, backend, hostfile, timeout, stall_timeout, listen_ip)
    hosts = [h.ssh for h in job.hostfile.hosts] if job.hostfile else ["127.0.0.1"] * job.np
    addresses = (
        [h.ips[0] if h.ips else h.ssh for h in job.hostfile.hosts] if job.hostfile else hosts
    )
    spec = bench_spec_module.bench_spec(
        uuid.uuid4().hex,
        job.np,
        job.backend,
        hosts,
        op,
        dtype,
        min_bytes,
        max_bytes,
        factor,
        iters,
        warmup,
        check,
        stream,
        addresses,
    )
    bench_spec_module.check_gate(min_busbw)
    if plot_path is not None:
        from mlxrun.bench.plot import check_plot_target

        check_plot_target(plot_path)
    if csv_path is not None and (csv_path.is_dir() or not csv_path.parent.is_dir()):
        where = "is a folder" if csv_path.is_dir() else f"no folder {csv_path.parent}"
        raise UsageError(f"--csv {csv_path}: {where}")
    output = RankOutput(stdout=sys.stderr.buffer if as_json else None)
    total = len(spec.ops) * len(spec.dtypes) * len(spec.sizes)
    progress = bench_render.BenchProgress(err_console, total, enabled=not as_json)
    try:
        result = run_bench(spec, job, output, progress.on_record, while_starting=load_display)
    except BenchFailed as e:
        progress.stop()
        show_end(err_console(), e.report, e.timeout)
        raise typer.Exit(e.exit_code) from None
    progress.stop()
    if csv_path is not None:
        try:
            csv_path.write_text(result.to_csv())
        except OSError as e:
            raise UsageError(f"--csv {csv_path}: cannot write ({e.strerror})") from None
    if plot_path is not None:
        from mlxrun.bench.plot import plot

        plot(result, plot_path)
    if as_json:
        print(result.to_json())
    else:
        console = out_console()
        if not console.is_terminal:  # a file or a pipe: whole columns, not 80 cut ones
            console.width = max(console.width, bench_render.TABLE_WIDTH)
        console.print(bench_render.bench_table(result))
        for line in bench_render.footer(result):
            console.print(line, markup=False, highlight=False)
        if console.is_terminal:
            for line in bench_render.chart(result):
                console.print(line, markup=False, highlight=False)
    failures = []
    if result.wrong:
        failures.append(f"{result.wrong} values differ from the exact result (#wrong)")
    avg = result.avg_busbw_gbps
    if min_busbw is not None and (avg is None or avg < min_busbw):
        shown = "no rows" if avg is None else f"{avg:.3f} GB/s"
        failures.append(f"the average bus bandwidth ({shown}) is below --min-busbw {min_busbw:g}")
    for failure in failures:
        err_console().print(f"Error: {failure}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(ExitCode.RANK_FAILED if failures else ExitCode.OK)


def _is_click_error(e: Exception) -> bool:
    # Typer raises click's errors (vendored in recent releases): known by their shape.
    return hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int)


def _show_click_error(e: Any) -> int:
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        return ExitCode.OK
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    err_console().print(
        f"Error: {e.format_message()}{hint}", markup=False, highlight=False, soft_wrap=True
    )
    return int(e.exit_code)


def _internal_error(e: Exception) -> int:
    if os.environ.get("MLXRUN_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    else:
        message = (
            f"Error: internal error: {type(e).__name__}: {e} (set MLXRUN_DEBUG=1 for the traceback)"
        )
        err_console().print(message, markup=False, highlight=False, soft_wrap=True)
    return ExitCode.RANK_FAILED


def app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command that argv names. Typer builds the click parameters
    of every registered command on each call (50-80 ms for all 15, half of it evaluating
    their annotations), and a run needs one. Anything else (help, a misspelt command, no
    command) gets the whole app."""
    name = argv[0] if argv else ""
    for info in app.registered_commands:
        callback = info.callback.__name__ if info.callback else ""
        if name == (info.name or typer.main.get_command_name(callback)):
            one = copy.copy(app)
            one.registered_commands = [info]
            return one
    return app


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit code. User errors become one line, never a
    traceback (unless MLXRUN_DEBUG=1)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        result = app_for(argv)(args=argv, prog_name="mlxrun", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except MlxrunError as e:
        if os.environ.get("MLXRUN_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        err_console().print(f"Error: {e}", markup=False, highlight=False, soft_wrap=True)
        return e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `mlxrun sum big.txt | head`: the reader has what it wanted
        return ExitCode.OUTPUT_CLOSED
    except Exception as e:  # noqa: BLE001 - the last line of defence
        stop = stop_behind(e)
        if stop is not None:  # a stop signal that Python wrapped (cli.signals)
            raise stop from None
        if _is_click_error(e):
            return _show_click_error(e)
        return _internal_error(e)


def console_main() -> None:
    """The `mlxrun` command: main(), then exit at once. Everything is printed and every
    rank reaped by then: the interpreter's teardown frees hundreds of modules one by one
    (about 0.1 s) and helps nobody. A stop signal outside the job ends it here."""
    take_stop_signals()  # already taken by `mlxrun.__main__`, before this module's imports
    try:
        code = main()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # a reader that went away (`| head`) is not an error
        exiting()
    except Stopped as stop:
        code = stop.exit_code
    mark("cli exit")
    os._exit(int(code))
