"""The command line (Typer) and what it draws (Rich): thin, over the library."""
