"""`odyssey`, each training epoch a second longer (`runs.slow_epochs`): what the Slurm test's
jobs run, so that their populations are still training when a task is stopped, however fast
the machine."""

import sys

import pytest
from runs import slow_epochs

from study.cli import main

if __name__ == "__main__":
    with pytest.MonkeyPatch.context() as patch:
        slow_epochs(patch)
        sys.exit(main(sys.argv[1:]))
