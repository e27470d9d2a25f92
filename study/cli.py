"""`odyssey`: the command line. Each command's work lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

DEFAULT_STORAGE = "sqlite:///results/odyssey.db"


def _handler(path: str):
    """Import the handler lazily so that `odyssey --help` stays fast."""

    def call(args: argparse.Namespace) -> int | None:
        module, func = path.split(":")
        return getattr(importlib.import_module(module), func)(args)

    return call


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odyssey",
        description="Which parts of an LSTM matter: train the variants of Greff et al. "
        "with random search and analyse them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check", help="build every variant, print parameter counts, check a step"
    )
    check.set_defaults(func=_handler("study.selfcheck:cmd_check"))

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UserError as err:
        print(f"odyssey {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"odyssey {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
