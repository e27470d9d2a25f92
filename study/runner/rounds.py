"""Balanced rounds: the order in which a study's configurations are trained, so that a study
stopped at any point holds a sample spread over the whole range of network sizes, and every
variant the same one.

The N configurations are sorted by hidden size (then by index) and cut into bands of
`band_size` (the population size K: trials of one band train together, and similar sizes
pad little). Round r trains one band of every variant of the run: the bands of round r all
start before any band of round r + 1, and a trial sent back to the queue goes before any
new band. (A worker that would otherwise wait for the last bands of a round to end takes
the first band of the next: the cost of a round's tail is an idle worker, and a study of a
single variant would train on one worker only.) The bands are visited in maximin order
over their size quantiles: the median band first, then always the band farthest from those
visited (the smaller one on a tie), so after r rounds the visited bands are spread as evenly
over the size range as r bands can be. With the shared sample (`study.runner.search`), round r is
the same configurations in every variant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from optuna.trial import FrozenTrial, TrialState

from .retries import next_attempt


def band_order(n_bands: int) -> list[int]:
    """The bands' visiting order: the median first, then maximin over band positions."""
    if n_bands <= 0:
        return []
    order = [n_bands // 2]
    while len(order) < n_bands:
        rest = [b for b in range(n_bands) if b not in order]
        order.append(max(rest, key=lambda b: (min(abs(b - v) for v in order), -b)))
    return order


def rounds(sizes: Mapping[int, int], band_size: int) -> dict[int, int]:
    """The round of each configuration (index -> hidden size given), 0-based. Bands are cut
    from the smallest sizes up; a last band of fewer than `band_size` (N not a multiple of
    it) holds the largest sizes and comes last."""
    ranked = sorted(sizes, key=lambda index: (sizes[index], index))
    bands = [ranked[i : i + band_size] for i in range(0, len(ranked), band_size)]
    full = [b for b in range(len(bands)) if len(bands[b]) == band_size]
    order = [full[b] for b in band_order(len(full))] + [
        b for b in range(len(bands)) if b not in full
    ]
    return {index: r for r, b in enumerate(order) for index in bands[b]}


def padding_overhead(sizes: Sequence[int], band_size: int) -> float:
    """The compute a population spends on padding, averaged over the bands: each band pays
    for K trials of its largest size, K * N_max^2 / sum(N^2) - 1 (the recurrent products
    grow with N^2)."""
    ranked = sorted(sizes)
    bands = [ranked[i : i + band_size] for i in range(0, len(ranked), band_size)]
    if not bands:
        return 0.0
    waste = [len(b) * max(b) ** 2 / sum(n * n for n in b) - 1 for b in bands]
    return sum(waste) / len(waste)


def complete_rounds(studies_done: Sequence[Mapping[int, bool]], round_of: Mapping[int, int]) -> int:
    """How many rounds every study has finished: the first r rounds are complete when each
    study's configurations of those rounds are all done (`done` by configuration index)."""
    n_rounds = max(round_of.values(), default=-1) + 1
    for r in range(n_rounds):
        members = [i for i, ri in round_of.items() if ri == r]
        if not all(done.get(i, False) for done in studies_done for i in members):
            return r
    return n_rounds


def configurations(trials: Iterable[FrozenTrial]) -> tuple[dict[int, int], dict[int, bool]]:
    """A study's configurations from its trials, by configuration index: the hidden size, and
    whether it is finished: a trial complete, or failed for good (none waiting or running,
    and even a new run would not try it again, `retries.next_attempt`). A configuration whose
    trials failed for the machine's reasons is not finished: a rerun retries it."""
    sizes: dict[int, int] = {}
    histories: dict[int, list[FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        index = trial.user_attrs.get("config_index", trial.number)
        sizes[index] = int(trial.params.get("hidden_size", 0))
        histories.setdefault(index, []).append(trial)
    finished = {}
    for index, history in histories.items():
        states = {t.state for t in history}
        if TrialState.COMPLETE in states:
            finished[index] = True
        elif states & {TrialState.WAITING, TrialState.RUNNING}:
            finished[index] = False
        else:
            failed = [t for t in history if t.state == TrialState.FAIL]
            finished[index] = bool(failed) and next_attempt(failed, fresh_run=True) is None
    return sizes, finished


def progress(trials: Iterable[FrozenTrial], band_size: int) -> tuple[int, int]:
    """Rounds a study has finished, and its rounds in all."""
    sizes, finished = configurations(trials)
    round_of = rounds(sizes, band_size)
    return complete_rounds([finished], round_of), max(round_of.values(), default=-1) + 1
