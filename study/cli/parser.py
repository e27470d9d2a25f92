"""The parser of `odyssey`: every command and flag. Each command's work lives in its own
module beside this one, imported only when the command runs."""

from __future__ import annotations

import argparse
import difflib
import importlib
from typing import NoReturn

from .. import __version__
from ..runner.options import DEFAULT_PRESET, DEFAULT_STORAGE, RunOptions


def _handler(path: str):
    """Import the handler lazily so that `odyssey --help` stays fast."""

    def call(args: argparse.Namespace) -> int | None:
        module, func = path.split(":")
        return getattr(importlib.import_module(module), func)(args)

    return call


class _Parser(argparse.ArgumentParser):
    """A bad option is one line and exit status 2, as every other error a user can cause
    (argparse would print the usage block first); `--help` shows the usage. An unknown
    option is named by the command it was given to, with the nearest of that command's
    options (argparse suggests them only from Python 3.14)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = _commands(self).get(getattr(parsed, "command", None), self)
            command.error(
                f"unrecognized arguments: {' '.join(unknown)}{_nearest(command, unknown)}"
            )
        return parsed


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers of `parser`'s commands, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _nearest(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """'; did you mean --trials?' for the first unknown option that is close to one of the
    parser's options (difflib's similarity, at least 0.6), else nothing."""
    known = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    for given in unknown:
        if given.startswith("-"):
            close = difflib.get_close_matches(given.split("=", 1)[0], known, n=1)
            if close:
                return f"; did you mean {close[0]}?"
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="odyssey",
        description="Which parts of an LSTM matter: train the variants of Greff et al. "
        "with random search and analyse them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check", help="build every variant, print parameter counts, check a step"
    )
    check.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    check.set_defaults(func=_handler("study.cli.check:cmd_check"))

    datasets = sub.add_parser(
        "datasets", help="list the benchmarks: availability, sizes, metric, chance level"
    )
    datasets.add_argument("--json", action="store_true", help="print JSON instead of a table")
    datasets.add_argument(
        "--path",
        action="append",
        metavar="NAME=PATH",
        help="user data for timit, iam-ondb or jsb-original (else ODYSSEY_TIMIT, "
        "ODYSSEY_IAM_ONDB, ODYSSEY_JSB_ORIGINAL)",
    )
    datasets.set_defaults(func=_handler("study.cli.datasets:cmd_datasets"))

    bench = sub.add_parser(
        "bench", help="training speed of the variants against torch.nn.LSTM, side by side"
    )
    bench.add_argument("--quick", action="store_true", help="a reduced grid (under a minute)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    bench.add_argument("--variants", help="comma-separated variant names (default V,CIFG,FGR)")
    bench.add_argument(
        "--backend",
        default="auto",
        help="recurrence of our rows: auto (default), compiled, fused, triton or plain",
    )
    bench.add_argument(
        "--population", help="comma-separated trial counts K (default 1,16,64; GPU also 256)"
    )
    bench.add_argument("--hidden", help="comma-separated hidden sizes (default 20,100,200)")
    bench.add_argument("--length", help="comma-separated sequence lengths T (default 100,300)")
    bench.add_argument(
        "--training",
        metavar="BENCHMARK",
        help="instead: trial-sequences/s of the training engine on this benchmark, K 1,4,16,64",
    )
    bench.add_argument(
        "--sequences", type=int, default=40, help="with --training: sequences timed (default 40)"
    )
    bench.set_defaults(func=_handler("study.cli.bench:cmd_bench"))

    run = sub.add_parser("run", help="random search: train trials of each variant on a benchmark")
    run.add_argument("--benchmark", required=True, help="benchmark name (see `odyssey datasets`)")
    run.add_argument(
        "--variants", default="all", help="comma-separated variants, 'all' (default) or 'family'"
    )
    # Defaults are RunOptions' (which checks every value); each dest is its field's name.
    run.add_argument(
        "--trials",
        type=int,
        default=RunOptions.trials,
        help="trials per variant (default %(default)s)",
    )
    run.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        help="training budget: paper (default), quick, smoke or demo",
    )
    run.add_argument("--storage", default=RunOptions.storage, help="Optuna storage URL")
    run.add_argument(
        "--workers",
        type=int,
        default=RunOptions.workers,
        help="local worker processes (default %(default)s: train in the coordinator's own)",
    )
    run.add_argument(
        "--population",
        type=int,
        default=RunOptions.population,
        help="trials trained together (default 16; GPU 64)",
    )
    run.add_argument(
        "--device", default=RunOptions.device, help="auto (default), cpu, cuda or cuda:N"
    )
    run.add_argument(
        "--seed", type=int, default=RunOptions.seed, help="seed of the search and the trials"
    )
    run.add_argument(
        "--sampler", default=RunOptions.sampler, help="random (default, the paper's) or qmc"
    )
    run.add_argument(
        "--sample",
        default=RunOptions.sample,
        help="shared (every variant trains the same configurations; the default for a new "
        "storage) or independent (each variant its own, as in the paper); an existing storage "
        "keeps its own",
    )
    run.add_argument(
        "--data", default=RunOptions.data, help="folder or file of a user-supplied benchmark"
    )
    run.add_argument(
        "--checkpoints",
        default=RunOptions.checkpoints,
        help="folder of per-trial epoch checkpoints (default: beside a SQLite storage, "
        "<file>.checkpoints; for a server, results/checkpoints)",
    )
    run.add_argument(
        "--heartbeat",
        type=int,
        default=RunOptions.heartbeat,
        help="seconds between heartbeats (default %(default)s); stale after 2x + 1",
    )
    run.add_argument(
        "--time-limit",
        type=float,
        default=RunOptions.time_limit,
        metavar="SECONDS",
        help="stop after this wall time as on Ctrl-C (trials back to the queue); rerun to go on",
    )
    _protocol_options(run)
    run.set_defaults(func=_handler("study.cli.run:cmd_run"))

    train = sub.add_parser(
        "train", help="train one configuration (or a few) by hand, an epoch per line"
    )
    train.add_argument("--benchmark", required=True, help="benchmark name (see `odyssey datasets`)")
    train.add_argument("--data", help="folder or file of a user-supplied benchmark")
    train.add_argument("--variant", default="V", help="variant name (default V)")
    for flag, what in (
        ("--hidden-size", "hidden units per direction"),
        ("--learning-rate", "learning rate"),
        ("--momentum", "momentum"),
        ("--input-noise", "input noise std (default 0)"),
    ):
        train.add_argument(
            flag,
            default="0" if flag == "--input-noise" else None,
            required=flag != "--input-noise",
            help=f"{what}; comma-separated values train a population, one per value",
        )
    train.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        help="training budget: paper (default), quick, smoke or demo",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the weights and the noise")
    train.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    train.add_argument("--json", metavar="PATH", help="write every curve and result as JSON")
    _protocol_options(train)
    train.set_defaults(func=_handler("study.cli.train:cmd_train"))

    status = sub.add_parser("status", help="a table of every study in a storage")
    status.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_handler("study.cli.status:cmd_status"))

    report = sub.add_parser(
        "report", help="tables, Welch tests, fANOVA, figures and REPORT.md from a study storage"
    )
    report.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    report.add_argument(
        "--out",
        help="output folder (default: named after the storage, e.g. results/odyssey/ for "
        "sqlite:///results/odyssey.db)",
    )
    report.add_argument(
        "--benchmark", action="append", help="analyse only this benchmark (repeatable)"
    )
    report.add_argument(
        "--reference",
        metavar="URL",
        help="a second storage whose V studies of the same benchmarks, sampled alike, join "
        "the analysis as the variant every other is compared with (for arms run in a storage "
        "of their own, e.g. results/family/ against the reproduction)",
    )
    report.set_defaults(func=_handler("study.cli.report:cmd_report"))

    return parser


# Deviations from a preset's protocol, the same for `run` and `train`: Protocol field,
# type, help.
PROTOCOL_OVERRIDES = (
    ("max_epochs", int, "epochs at most"),
    ("patience", int, "epochs without improvement before stopping"),
    ("batch_size", int, "sequences per update (paper: 1)"),
    ("forget_bias", float, "initial forget-gate bias"),
    ("clip_norm", float, "per-trial gradient norm clipping"),
)


def _protocol_options(parser: argparse.ArgumentParser) -> None:
    for name, kind, what in PROTOCOL_OVERRIDES:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, help=f"override the preset: {what}")
    parser.add_argument(
        "--loss-reduction",
        choices=("sum", "mean"),
        help="override the preset: the loss over a sequence's frames, sum (paper) or mean",
    )


def protocol_of(args: argparse.Namespace):
    """The protocol of `args.preset` with the deviations `_protocol_options` parsed."""
    from ..training.protocol import protocol

    names = [name for name, _, _ in PROTOCOL_OVERRIDES] + ["loss_reduction"]
    return protocol(args.preset, **{name: getattr(args, name) for name in names})
