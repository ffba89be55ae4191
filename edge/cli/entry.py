"""The ``codeline`` console script: Ctrl-C at any moment, start-up included, is one line."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from edge.cli.main import run as main

        main()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
