"""Shared command-line plumbing: one-line errors and exit code 2 for bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .errors import UsageError

__all__ = ["ArgumentParser", "positive_int", "run"]

EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str):
        """Print ``<prog>: error: <message>`` as one line and exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def run(prog: str, main: Callable[[], int | None]) -> None:
    """Run ``main`` and turn a :class:`UsageError` into one stderr line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        code = main()
    except UsageError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        sys.exit(130)
    sys.exit(code or 0)
