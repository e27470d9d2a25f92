"""`odyssey`: the command line, the only layer that knows flags.

`parser` declares every command and flag; one module per command does its work (`run`,
`status`, `train`, `report`, `bench`, `check`, `datasets`). `main` turns each error a user can
cause into one line and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from ..errors import Interrupted, OptionError, UserError
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _run(args)
    except BrokenPipeError:  # `odyssey datasets | head`: the reader has what it wanted
        # Python flushes stdout once more at exit, into the same closed pipe.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1  # as rich's console does when the tables meet a closed pipe


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args) or 0
    except OptionError as err:  # the library names a field; the user gave an option
        option = f"--{err.field.replace('_', '-')}" if err.field in vars(args) else err.field
        print(f"odyssey {args.command}: error: {option}: {err.problem}", file=sys.stderr)
        return 2
    except UserError as err:
        print(f"odyssey {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as err:  # a folder or file given on the command line that cannot be used
        where = f"{err.filename}: " if err.filename else ""
        print(f"odyssey {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Interrupted says what became of the work in flight
        said = str(err) if isinstance(err, Interrupted) else "interrupted"
        print(f"odyssey {args.command}: {said}", file=sys.stderr)
        return 130
