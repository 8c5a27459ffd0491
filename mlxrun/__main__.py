"""`python -m mlxrun`, and the `mlxrun` command."""

import os

from mlxrun.cli.signals import Stopped, take_stop_signals
from mlxrun.rank.timeline import mark


def console_main() -> None:
    mark("cli start")
    take_stop_signals()  # before the CLI's imports: a signal during them is handled too
    try:
        from mlxrun.cli.app import console_main as run

        run()  # exits
    except Stopped as stop:
        os._exit(stop.exit_code)


if __name__ == "__main__":
    console_main()
