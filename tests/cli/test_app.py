"""The command line as a user meets it: help, and one-line errors for bad input.

These run the CLI in this process (Typer's CliRunner, or `main` as the `mlxrun` command
calls it): none of them starts a rank, so a subprocess would add nothing but time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlxrun.cli.app import app, app_for, main
from mlxrun.cli.signals import Stopped, stop_behind
from tests.helpers import script

runner = CliRunner()


def name_of(command) -> str:
    return command.name or command.callback.__name__


def command_names() -> list[str]:
    return sorted(name_of(c) for c in app.registered_commands)


def test_top_level_help_lists_every_command_and_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"], prog_name="mlxrun")
    assert result.exit_code == 0
    for name in command_names():
        assert name in result.stdout
    assert "124 timed out" in " ".join(result.stdout.split())


@pytest.mark.parametrize("name", command_names())
def test_the_one_command_app_is_the_same_command(name: str) -> None:
    """main builds only the command it runs: its help and its usage errors are the whole
    app's, word for word."""
    one = app_for([name])
    assert [c.callback for c in one.registered_commands] == [
        c.callback for c in app.registered_commands if name_of(c) == name
    ]
    for args in ([name, "--help"], [name, "--no-such-flag"]):
        whole, alone = (runner.invoke(a, args, prog_name="mlxrun") for a in (app, one))
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
    assert app_for(["--help"]) is app and app_for(["sums"]) is app and app_for([]) is app


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"], prog_name="mlxrun")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    doc = next(c for c in app.registered_commands if name_of(c) == name).callback.__doc__
    assert doc and doc.split("\n")[0].strip() in " ".join(result.stdout.split())


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("mlxrun ")


def test_the_installed_command_runs(mlxrun) -> None:
    # The one subprocess here: `python -m mlxrun` as the console script runs it.
    run = mlxrun("--version")
    assert run.returncode == 0 and run.stdout.startswith("mlxrun ")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def user_errors(tmp_path: Path) -> list[tuple[list[str], str]]:
    classic = script("classic.py")
    bad_json = write(tmp_path, "bad.json", '[{"ssh": "127.0.0.1"},\n')
    by_name = write(tmp_path, "names.json", json.dumps([{"ssh": "node1"}, {"ssh": "127.0.0.1"}]))
    bad_ip = write(tmp_path, "ip.json", json.dumps([{"ssh": "a", "ips": ["node-a"]}]))
    two = write(tmp_path, "two.json", json.dumps([{"ssh": "127.0.0.1"}] * 2))
    return [
        (
            ["exec", "--np", "2", "--", "python", "nope.py"],
            "Error: nope.py: no such file (the script each rank should run)",
        ),
        (["exec", "nope.py"], "Error: nope.py: no such file (the script each rank should run)"),
        (["exec", "--np", "0", classic], "Error: --np must be at least 1 (got 0)"),
        (
            ["exec", "--backend", "gloo", classic],
            'Error: --backend: unknown backend "gloo" (use ring, mpi, nccl, jaccl, jaccl-ring)',
        ),
        (
            ["exec", "--ranks", "0,7", classic],
            'Error: --ranks: "7" is not a rank of this job (0 to 1)',
        ),
        (["exec", "--", "no-such-command-x"], "Error: no-such-command-x: command not found"),
        (
            ["exec", "--hostfile", "/no/hosts.json", classic],
            "Error: /no/hosts.json: hostfile not found",
        ),
        (
            ["exec", "--hostfile", bad_json, classic],
            f"Error: {bad_json}: line 2: not valid JSON (Expecting value)",
        ),
        (
            ["exec", "--hostfile", by_name, classic],
            f'Error: {by_name}: hosts[0] -> ips: missing: the ring backend needs the IP of "node1" '
            '(add "ips": ["<its IP>"])',
        ),
        (
            ["exec", "--hostfile", bad_ip, classic],
            f'Error: {bad_ip}: hosts[0] -> ips[0]: "node-a" is not an IP address; the ring backend '
            "needs IP literals, such as 192.168.1.10",
        ),
        (
            ["exec", "--np", "3", "--hostfile", two, classic],
            f"Error: --np 3 does not match the 2 hosts of {two}: drop --np or edit the hostfile",
        ),
    ]


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path, capsys) -> None:
    for args, message in user_errors(tmp_path):
        code = main(args)
        out = capsys.readouterr()
        assert (code, out.err) == (2, message + "\n"), args
        assert out.out == ""


def test_usage_errors_found_by_the_parser_are_one_line(capsys) -> None:
    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().err

    assert run("exec", "--nproc", "2", script("classic.py")) == (
        2,
        "Error: --nproc: unknown option (put the rank's command after --)\n",
    )
    assert run("exec") == (2, "Error: Missing argument 'command'. (see `mlxrun exec --help`)\n")
    code, err = run("exec", "--np", "two", script("classic.py"))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("Error: Invalid value for '--np'")


def test_no_arguments_shows_help(capsys) -> None:
    assert main([]) == 0
    assert "Usage: mlxrun" in capsys.readouterr().out


def test_a_hostfile_of_local_hosts_runs_one_rank_per_host(mlxrun, tmp_path: Path) -> None:
    hosts = write(tmp_path, "hosts.json", json.dumps({"hosts": [{"ssh": "127.0.0.1"}] * 3}))
    run = mlxrun("exec", "--hostfile", hosts, "--", "python", script("classic.py"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("total 10") == 3


class _StopsOnSetName:
    def __set_name__(self, owner: type, name: str) -> None:
        raise Stopped(15)  # as the handler raises it, when SIGTERM lands in a class's creation


def test_a_stop_signal_that_python_wrapped_is_still_a_stop() -> None:
    # Python itself wraps it: "RuntimeError: Error calling __set_name__" (seen in CI, a
    # SIGTERM during the CLI's imports), caused by the Stopped.
    with pytest.raises(RuntimeError) as e:
        type("Class", (), {"attr": _StopsOnSetName()})
    stop = stop_behind(e.value)
    assert stop is not None and stop.exit_code == 128 + 15
    assert stop_behind(RuntimeError("plain")) is None


def test_main_passes_a_wrapped_stop_on_as_a_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fault injected: a signal at exactly that moment cannot be had on demand.
    def wrapped(argv: list[str]) -> object:
        type("Class", (), {"attr": _StopsOnSetName()})
        return None

    monkeypatch.setattr("mlxrun.cli.app.app_for", wrapped)
    with pytest.raises(Stopped) as e:
        main(["sum", "x.txt"])
    assert e.value.exit_code == 143
