"""Time the compiled CPU library built with other flags against the default (-march=native).

Both libraries are built (or found in the cache) and loaded in one process; the same
training steps of `odyssey bench` (forward, backward and update, H 100, T 100, one sequence
per trial) run with each library in turn, step after step, so that a change in machine
load hits both alike. Prints per variant and K the median ms per trial of each and the
median of the per-step ratios (other / native).

    python scripts/cxxflags.py [--flags "-O3"] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.cli.bench import _ours  # noqa: E402
from variants import compiled  # noqa: E402


def load(flags: str | None):
    """The library built with ODYSSEY_CXXFLAGS=flags (None: the default flags)."""
    if flags is None:
        os.environ.pop("ODYSSEY_CXXFLAGS", None)
    else:
        os.environ["ODYSSEY_CXXFLAGS"] = flags
    compiled.library.cache_clear()
    return compiled.library()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", default="-O3", help="ODYSSEY_CXXFLAGS of the other build")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    libraries = {"native": load(None), "other": load(args.flags)}
    if None in libraries.values():
        sys.exit("cxxflags: a library did not build")
    original = compiled.library
    print(f"other: ODYSSEY_CXXFLAGS={args.flags!r}; load average {os.getloadavg()[0]:.1f}")
    torch.manual_seed(0)
    for variant in ("V", "CIFG", "FGR"):
        for K in (1, 16, 64):
            steps = {
                n: _ours(variant, K, 100, 100, torch.device("cpu"), "compiled") for n in libraries
            }
            times: dict[str, list[float]] = {n: [] for n in libraries}
            for repeat in range(2 + args.repeats):  # two warm-ups
                for name, step in steps.items():
                    compiled.library = lambda lib=libraries[name]: lib
                    start = time.perf_counter()
                    step()
                    if repeat >= 2:
                        times[name].append(time.perf_counter() - start)
            compiled.library = original
            ratio = statistics.median(o / n for o, n in zip(times["other"], times["native"]))
            native, other = (statistics.median(times[n]) / K * 1e3 for n in libraries)
            print(
                f"{variant:5s} K={K:3d}  native {native:6.2f} ms/trial  other {other:6.2f}"
                f"  other/native {ratio:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
