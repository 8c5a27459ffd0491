"""The command line as a user meets it: help, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import script

from mlxrun.cli import app


def name_of(command) -> str:
    return command.name or command.callback.__name__


def command_names() -> list[str]:
    return sorted(name_of(c) for c in app.registered_commands)


def test_top_level_help_lists_every_command_and_the_exit_codes(mlxrun) -> None:
    run = mlxrun("--help")
    assert run.returncode == 0
    for name in command_names():
        assert name in run.stdout
    assert "124 timed out" in " ".join(run.stdout.split())


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(mlxrun, name: str) -> None:
    run = mlxrun(name, "--help")
    assert run.returncode == 0, run.stderr
    assert "Usage:" in run.stdout
    doc = next(c for c in app.registered_commands if name_of(c) == name).callback.__doc__
    assert doc and doc.split("\n")[0].strip() in " ".join(run.stdout.split())


def test_version(mlxrun) -> None:
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
            'Error: --backend: unknown backend "gloo" (use ring or mpi)',
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


def test_user_errors_are_one_line_with_exit_code_2(mlxrun, tmp_path: Path) -> None:
    for args, message in user_errors(tmp_path):
        run = mlxrun(*args)
        assert (run.returncode, run.stderr) == (2, message + "\n"), args
        assert run.stdout == ""


def test_usage_errors_found_by_the_parser_are_one_line(mlxrun) -> None:
    run = mlxrun("exec", "--nproc", "2", script("classic.py"))
    assert (run.returncode, run.stderr) == (
        2,
        "Error: --nproc: unknown option (put the rank's command after --)\n",
    )
    run = mlxrun("exec")
    assert (run.returncode, run.stderr) == (
        2,
        "Error: Missing argument 'command'. (see `mlxrun exec --help`)\n",
    )
    run = mlxrun("exec", "--np", "two", script("classic.py"))
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("Error: Invalid value for '--np'")


def test_no_arguments_shows_help(mlxrun) -> None:
    run = mlxrun()
    assert run.returncode == 0 and "Usage: mlxrun" in run.stdout


def test_a_hostfile_of_local_hosts_runs_one_rank_per_host(mlxrun, tmp_path: Path) -> None:
    hosts = write(tmp_path, "hosts.json", json.dumps({"hosts": [{"ssh": "127.0.0.1"}] * 3}))
    run = mlxrun("exec", "--hostfile", hosts, "--", "python", script("classic.py"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("total 10") == 3
