"""`python -m mlxrun`, and the `mlxrun` command."""

import os

from mlxrun.cli.signals import stop_behind, take_stop_signals
from mlxrun.rank.timeline import mark


def console_main() -> None:
    mark("cli start")
    take_stop_signals()  # before the CLI's imports: a signal during them is handled too
    try:
        from mlxrun.cli.app import console_main as run

        run()  # exits
    except BaseException as e:  # noqa: BLE001 - a stop signal, however Python wrapped it
        stop = stop_behind(e)
        if stop is None:
            raise
        os._exit(stop.exit_code)


if __name__ == "__main__":
    console_main()
