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

    bench = sub.add_parser(
        "bench", help="training speed of the variants against torch.nn.LSTM, side by side"
    )
    bench.add_argument("--quick", action="store_true", help="a reduced grid (under a minute)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    bench.add_argument("--variants", help="comma-separated variant names (default V,CIFG,FGR)")
    bench.add_argument("--population", help="comma-separated trial counts K")
    bench.add_argument("--hidden", help="comma-separated hidden sizes")
    bench.add_argument("--length", help="comma-separated sequence lengths T")
    bench.set_defaults(func=_handler("study.bench:cmd_bench"))

    report = sub.add_parser(
        "report", help="tables, Welch tests, fANOVA, figures and REPORT.md from a study storage"
    )
    report.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    report.add_argument("--out", default="results", help="output folder (default: results)")
    report.add_argument(
        "--benchmark", action="append", help="analyse only this benchmark (repeatable)"
    )
    report.set_defaults(func=_handler("study.analysis.report:cmd_report"))

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
