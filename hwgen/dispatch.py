"""Running a parsed command of `hwgen` or `python -m hwgen.train`: a mistake in what the user gave
(`HwgenError`) is one line on stderr and exit status 2, a tool that failed (`ToolError`) one line
and 1. Both command lines dispatch through here, so neither needs to import the other."""

from __future__ import annotations

import argparse
import sys
import warnings

from hwgen.errors import HwgenError, ToolError


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: a user's mistake one line and exit status 2, a tool's failure one
    line and 1."""
    warnings.filterwarnings("ignore", category=UserWarning)  # optional-package notes from brevitas
    try:
        return args.func(args)
    except HwgenError as exc:
        print(f"hwgen: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"hwgen: tool error: {one_line(str(exc))}", file=sys.stderr)
        return 1


def one_line(message: str) -> str:
    """`message` with every line break and other control character escaped: names from the
    user's files may hold anything, and the error must stay one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in message)
