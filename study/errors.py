"""The exceptions a user can cause. The CLI prints each as one line and exits 2, or 130 for
an interrupt."""


class UserError(Exception):
    """Bad option, missing or corrupt data, unreachable storage: says what was expected."""


class OptionError(UserError, ValueError):
    """A value out of range, named by its field (of `RunOptions`, `Protocol`): the library
    knows fields, the CLI names the option that set the field instead."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class StorageError(UserError):
    """The storage failed mid-run (lost past the grace period, or an error no wait cures):
    nothing more can be written to it, the requeue of the trials in flight included."""


class CheckpointError(UserError):
    """A checkpoint could not be written (a full disk, a read-only folder): the machine's
    fault, not a trial's, and every trial would meet it. The run stops at once and its
    trials go back to the queue, no attempt counted."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, handled: the message says what became of the work in flight."""
