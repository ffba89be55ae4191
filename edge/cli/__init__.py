"""The ``codeline`` command line (typer + rich)."""
